"""Request bodies and response shapes of API keys (SDK-CONTRACT §2.2, §2.17, §3)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from app.core.ids import now_ms
from app.core.validation import (
    Description,
    Metadata,
    Name,
    ScopeList,
    ShortText,
    StrictModel,
    Tags,
    TimestampMs,
)
from app.models.api_key import ApiKey

SECRET_ALGORITHM = "argon2id"
MAX_GRACE_SECONDS = 7 * 24 * 3600


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise ValueError(f"'{value}' is not an IP address or CIDR range") from exc


Network = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_network)]


def _future(value: int | None) -> int | None:
    if value is not None and value <= now_ms():
        raise ValueError("must be in the future (Unix milliseconds)")
    return value


FutureMs = Annotated[TimestampMs, AfterValidator(_future)]
# A caller-supplied secret (importing a key from elsewhere) must be as strong as a generated one.
ImportedSecret = Annotated[str, StringConstraints(min_length=32, max_length=256, pattern=r"^[\x21-\x7e]+$")]


class Restrictions(StrictModel):
    scopes: ScopeList = Field(default_factory=list)
    # Callers outside these addresses/ranges get 403 even with the right secret. Absent: anywhere.
    ip_allowlist: Annotated[list[Network], Field(max_length=100)] | None = None


class CreateApiKey(StrictModel):
    type: Literal["api_key"] = "api_key"
    name: Name
    restrictions: Restrictions
    description: Description | None = None
    tags: Tags | None = None
    expires_at: FutureMs | None = None
    metadata: Metadata | None = None
    secret: ImportedSecret | None = None
    # Accepted for compatibility with CreateAccountApiKey; the hint is always derived from the secret.
    secret_hint: ShortText | None = None


class UpdateApiKey(StrictModel):
    status: Literal["active", "blocked", "revoked"] | None = None
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    status_by: Annotated[str, StringConstraints(max_length=64)] | None = None
    name: Name | None = None
    description: Description | None = None
    tags: Tags | None = None
    restrictions: Restrictions | None = None
    expires_at: FutureMs | None = None
    metadata: Metadata | None = None


class StatusChange(StrictModel):
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    status_by: Annotated[str, StringConstraints(max_length=64)] | None = None


class RotateApiKey(StrictModel):
    # How long the previous secret keeps working after the rotation. Default 0: it stops at once.
    grace_period_seconds: Annotated[int, Field(ge=0, le=MAX_GRACE_SECONDS)] = 0


def display_status(key: ApiKey) -> str:
    """`expired` is derived: the stored status stays `active` when a key simply runs out."""
    if key.status == "active" and key.expires_at is not None and key.expires_at <= now_ms():
        return "expired"
    return key.status


def api_key_to_api(key: ApiKey) -> dict[str, Any]:
    """The contract's ApiKey: `secret` is metadata only, never the secret or its hash."""
    out: dict[str, Any] = {
        "id": key.id,
        "org_id": key.org_id,
        "issuer_id": key.issuer_id,
        "type": key.type,
        "name": key.name,
        "description": key.description,
        "tags": list(key.tags or []),
        "restrictions": dict(key.restrictions or {}),
        "secret": {"algorithm": SECRET_ALGORITHM, "hint": key.secret_hint},
        "status": display_status(key),
        "status_at": key.status_at,
        "status_reason": key.status_reason,
        "status_by": key.status_by,
        "expires_at": key.expires_at,
        "metadata": dict(key.metadata_ or {}),
        "owner": key.owner_kind,
        "last_rotated_at": key.last_rotated_at,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
    }
    return out


def api_key_list_item(key: ApiKey) -> dict[str, Any]:
    restrictions = key.restrictions or {}
    return {
        "id": key.id,
        "org_id": key.org_id,
        "issuer_id": key.issuer_id,
        "type": key.type,
        "status": display_status(key),
        "name": key.name,
        "description": key.description,
        "tags": list(key.tags or []),
        "scopes": list(restrictions.get("scopes", [])),
        "ip_allowlist": list(restrictions.get("ip_allowlist") or []),
        "expires_at": key.expires_at,
        "secret_hint": key.secret_hint,
        "last_rotated_at": key.last_rotated_at,
        "status_at": key.status_at,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
    }
