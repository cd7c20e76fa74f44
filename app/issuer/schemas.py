"""Issuer request bodies and the contract's Issuer / IssuerListItem shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from app.core.validation import Description, JsonObject, Metadata, Name, ScopeList, StrictModel
from app.models.issuer import Issuer

IssuerStatus = Literal["active", "inactive", "suspended"]


def _check_settings(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return value
    # CreateIssuerSettingsInput: `access` is the one required key, and it is an object.
    if not isinstance(value.get("access"), dict):
        raise ValueError("settings.access is required and must be an object")
    allowed = {"access", "portals", "branding", "security"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"unknown settings keys: {', '.join(unknown)}")
    for name in allowed - {"access"}:
        if name in value and value[name] is not None and not isinstance(value[name], dict):
            raise ValueError(f"settings.{name} must be an object")
    mode = value["access"].get("mode")
    if mode is not None and mode not in ("public", "private", "invite_only"):
        raise ValueError("settings.access.mode must be public, private or invite_only")
    return value


class IssuerCreate(StrictModel):
    name: Name
    description: Description | None = None
    links: JsonObject | None = None
    available_scopes: ScopeList | None = None
    status: IssuerStatus | None = None
    settings: JsonObject | None = None
    metadata: Metadata | None = None

    _settings = field_validator("settings")(_check_settings)


class IssuerUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    links: JsonObject | None = None
    available_scopes: ScopeList | None = None
    status: IssuerStatus | None = None
    settings: JsonObject | None = None
    metadata: Metadata | None = None

    _settings = field_validator("settings")(_check_settings)


def issuer_to_api(issuer: Issuer) -> dict[str, Any]:
    return {
        "id": issuer.id,
        "account_id": issuer.account_id,
        "name": issuer.name,
        "description": issuer.description,
        "links": issuer.links or {},
        "available_scopes": list(issuer.available_scopes or []),
        "status": issuer.status,
        "status_at": issuer.status_at,
        "settings": issuer.settings or {},
        "metadata": issuer.metadata_ or {},  # REQUIRED object in the SDK model, never null
        "created_at": issuer.created_at,
        "updated_at": issuer.updated_at,
    }


def access_mode(issuer: Issuer) -> str:
    return str((issuer.settings or {}).get("access", {}).get("mode") or "public")


def readiness(issuer: Issuer, active_clients: int) -> str:
    """`ready` once an active issuer has a client to sign in through."""
    if issuer.status != "active":
        return "inactive"
    return "ready" if active_clients > 0 else "needs_client"


def issuer_list_item(issuer: Issuer, active_clients: int, auth_methods: tuple[int, int] = (0, 0)
                     ) -> dict[str, Any]:
    """`auth_methods` = (configured, enabled) rows of {I}/auth-methods."""
    out = issuer_to_api(issuer)
    settings = issuer.settings or {}
    total, enabled = auth_methods
    out.update({
        "access_mode": access_mode(issuer),
        "auth_method_count": total,
        # Hosted password sign-in is always available, configured or not.
        "enabled_login_method_count": max(1, enabled),
        "enabled_signup_method_count": 0,
        "available_scope_count": len(issuer.available_scopes or []),
        "branding_configured": bool(settings.get("branding")),
        "readiness": readiness(issuer, active_clients),
    })
    return out
