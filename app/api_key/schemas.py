"""Request bodies and response shapes of API keys (SDK-CONTRACT §2.2, §2.17, §3)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.core.ids import now_ms
from app.core.responses import JsonDict, ResponseModel, StrList, with_fields
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


def _unique(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


IssuerRef = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Restrictions(StrictModel):
    scopes: ScopeList = Field(default_factory=list)
    # Callers outside these addresses/ranges get 403 even with the right secret. Absent: anywhere.
    ip_allowlist: Annotated[list[Network], Field(max_length=100)] | None = None
    # Account keys only: a delegated admin of these issuers of the account (see README, API keys).
    # Absent: the whole account.
    issuer_ids: Annotated[list[IssuerRef], Field(min_length=1, max_length=100),
                          AfterValidator(_unique)] | None = None


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


class KeySecretInfo(ResponseModel):
    """Metadata of the secret, never the secret or its hash."""

    algorithm: str = SECRET_ALGORITHM
    hint: str | None


class ApiKeyOut(ResponseModel):
    id: str
    org_id: str | None
    issuer_id: str | None
    type: str
    name: str
    description: str | None
    tags: StrList
    restrictions: JsonDict
    secret: KeySecretInfo
    status: str
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    expires_at: int | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    owner: str = Field(validation_alias="owner_kind")
    last_rotated_at: int | None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: ApiKey) -> Self:
        return cls.model_validate(with_fields(
            row, status=display_status(row),
            secret=KeySecretInfo(algorithm=SECRET_ALGORITHM, hint=row.secret_hint)))


class ApiKeyWithSecret(ApiKeyOut):
    """The create and rotate answers: the one time the secret is shown."""

    secret_plain: str

    @classmethod
    def with_secret(cls, row: ApiKey, secret: str) -> Self:
        return cls.model_validate(with_fields(
            row, status=display_status(row), secret_plain=secret,
            secret=KeySecretInfo(algorithm=SECRET_ALGORITHM, hint=row.secret_hint)))


class ApiKeyListItem(ResponseModel):
    id: str
    org_id: str | None
    issuer_id: str | None
    type: str
    status: str
    name: str
    description: str | None
    tags: StrList
    scopes: list[str]
    ip_allowlist: list[str]
    expires_at: int | None
    secret_hint: str | None
    last_rotated_at: int | None
    status_at: int | None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: ApiKey) -> Self:
        restrictions = row.restrictions or {}
        return cls.model_validate(with_fields(
            row, status=display_status(row), scopes=list(restrictions.get("scopes", [])),
            ip_allowlist=list(restrictions.get("ip_allowlist") or [])))


class KeyRotated(ResponseModel):
    """The rotate answer: the new secret, shown this once."""

    secret_plain: str
    id: str
    secret_hint: str | None
    last_rotated_at: int | None
    previous_secret_expires_at: int | None


class CallerAccount(BaseModel):
    account_id: str
    org_id: str | None = None
    scopes: list[str]
    # Present for an issuer-limited key (a delegated admin of these issuers only).
    issuer_ids: list[str] | None = None


class CallerOrganization(BaseModel):
    model_config = ConfigDict(extra="allow")

    org_id: str
    scopes: list[str]


class CallerIdentity(BaseModel):
    """GET /v1/me: who is calling (an account or an organization) and with which scopes."""

    type: str
    key_id: str | None = None
    user_id: str | None = None
    issuer_id: str | None = None
    accounts: list[CallerAccount]
    organizations: list[CallerOrganization]
