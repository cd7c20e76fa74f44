"""Issuer request bodies and the contract's Issuer / IssuerListItem shapes."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, field_validator

from app.core.responses import JsonDict, ResponseModel, StrList, with_fields
from app.core.validation import Description, JsonObject, Metadata, Name, ScopeList, StrictModel
from app.models.issuer import Issuer

IssuerStatus = Literal["active", "inactive", "suspended"]


# settings.security.client_registration: dynamic client registration (RFC 7591) is off unless set.
REGISTRATION_MODES = ("open", "token")


def check_registration_setting(settings: dict[str, Any]) -> None:
    """An issuer settings body's `security.client_registration`: absent, null, "open" or "token"."""
    security = settings.get("security")
    if not isinstance(security, dict) or security.get("client_registration") is None:
        return
    if security["client_registration"] not in REGISTRATION_MODES:
        raise ValueError('settings.security.client_registration must be "open", "token" or null')


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
    check_registration_setting(value)
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


class IssuerOut(ResponseModel):
    id: str
    account_id: str
    name: str
    description: str | None
    links: JsonDict
    available_scopes: StrList
    status: str
    status_at: int | None
    settings: JsonDict
    metadata: JsonDict = Field(validation_alias="metadata_")  # REQUIRED object in the SDK model
    created_at: int
    updated_at: int | None


class SigningKeyOut(ResponseModel):
    kid: str = Field(validation_alias="id")
    alg: str
    status: str
    created_at: int


class SigningKeysRotated(ResponseModel):
    issuer_id: str
    signing_keys: list[SigningKeyOut]


# The introspection body is read by hand (`{"token": ...}`); this documents it.
IntrospectRequestBody: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["token"], "properties": {
        "token": {"type": "string", "minLength": 1, "maxLength": 8192}}}}}}}


def access_mode(issuer: Issuer) -> str:
    return str((issuer.settings or {}).get("access", {}).get("mode") or "public")


def readiness(issuer: Issuer, active_clients: int) -> str:
    """`ready` once an active issuer has a client to sign in through."""
    if issuer.status != "active":
        return "inactive"
    return "ready" if active_clients > 0 else "needs_client"


class IssuerListItem(IssuerOut):
    access_mode: str
    auth_method_count: int
    enabled_login_method_count: int
    enabled_signup_method_count: int
    available_scope_count: int
    branding_configured: bool
    readiness: str

    @classmethod
    def of_counts(cls, issuer: Issuer, active_clients: int, auth_methods: tuple[int, int] = (0, 0)
                  ) -> Self:
        """`auth_methods` = (configured, enabled) rows of {I}/auth-methods."""
        total, enabled = auth_methods
        return cls.model_validate(with_fields(
            issuer,
            access_mode=access_mode(issuer),
            auth_method_count=total,
            # Hosted password sign-in is always available, configured or not.
            enabled_login_method_count=max(1, enabled),
            enabled_signup_method_count=0,
            available_scope_count=len(issuer.available_scopes or []),
            branding_configured=bool((issuer.settings or {}).get("branding")),
            readiness=readiness(issuer, active_clients),
        ))
