"""User bodies and the `User` / `IssuerUsersListItem` shapes (SDK-CONTRACT §2.18, §3.1)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from app.core.crypto import hmac_sha256
from app.core.responses import JsonDict, ResponseModel, StrList, with_fields
from app.core.validation import JsonObject, Metadata, ScopeList, ShortText, StrictModel, TimestampMs
from app.models.user import User
from app.user.identifiers import (
    IdentifierError,
    check_single_script,
    compare_form,
    display_form,
    lookup_form,
)

# A pragmatic address check (no dependency): one @, a dotted domain, no spaces or control chars.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_USERNAME = re.compile(r"^[^\s\x00-\x1f\x7f]{1,320}$")

UsernameType = Literal["email", "phone", "username"]
Username = Annotated[str, StringConstraints(min_length=1, max_length=320)]
# argon2 hashes any length, but a bound keeps a request from buying seconds of CPU.
PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 256
Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]
StatusReason = Annotated[str, StringConstraints(max_length=1024)]

# The data store users live in; a single-store deployment has one.
STORE_ID = "primary"


def username_error(username_type: str, username: str) -> str | None:
    if username_type == "email" and not _EMAIL.match(username):
        return "username must be an email address"
    if username_type == "phone" and not _PHONE.match(username):
        return "username must be an E.164 phone number like +15551234567"
    if username_type == "username" and not _USERNAME.match(username):
        return "username must not contain spaces or control characters"
    if username_type in ("username", "email"):
        try:
            compare_form(username)
            check_single_script(display_form(username))
        except IdentifierError as exc:
            return str(exc)
    return None


def display_username(username_type: str, username: str) -> str:
    """The stored, shown form (PRECIS UsernameCasePreserved); call after username_error."""
    return display_form(username) if username_type in ("username", "email") else username


def normalize_username(username: str) -> str:
    """Usernames are unique per issuer in PRECIS UsernameCaseMapped form (app/user/identifiers.py)."""
    return lookup_form(username)


def username_hash(secret_key: str, issuer_id: str, normalized: str) -> str:
    """A stable, non-reversible handle for the username, for lists that must not show it."""
    return hmac_sha256(secret_key, f"username:{issuer_id}:{normalized}")


class UserCreate(StrictModel):
    username_type: UsernameType
    username: Username
    profile: JsonObject = {}
    password: Password | None = None
    # pending_approval: the user cannot sign in until an administrator approves (approvals API).
    status: Literal["active", "pending_approval"] = "active"
    scopes: ScopeList | None = None
    preferences: JsonObject | None = None
    custom_fields: JsonObject | None = None
    metadata: Metadata | None = None

    @field_validator("username")
    @classmethod
    def _username_matches_type(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        kind = info.data.get("username_type")
        err = username_error(kind, value) if kind else None
        if err:
            raise ValueError(err)
        return display_username(kind, value) if kind else value


class UserUpdate(StrictModel):
    username_type: UsernameType | None = None
    username: Username | None = None
    profile: JsonObject | None = None
    scopes: ScopeList | None = None
    preferences: JsonObject | None = None
    custom_fields: JsonObject | None = None
    metadata: Metadata | None = None
    # Deletion has its own route.
    status: Literal["active", "blocked"] | None = None
    status_reason: StatusReason | None = None


class ApprovalDecision(StrictModel):
    status: Literal["approved", "rejected"]
    reason: StatusReason | None = None


class DeviceCreate(StrictModel):
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    name: ShortText | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None
    # Strict: `false` is not a time (lax validation would read it as 0, i.e. "the default").
    expires_at: Annotated[TimestampMs, Field(strict=True)] | None = None


class VerifierCreate(StrictModel):
    type: Literal["password", "totp"]
    # type password: the new password (required); type totp: a display name (optional).
    password: Password | None = None
    name: ShortText | None = None


class EnrollmentComplete(StrictModel):
    enrollment_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class VerifierUpdate(StrictModel):
    name: ShortText | None = None
    status: Literal["active", "disabled"] | None = None


class CodeCheck(StrictModel):
    code: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class UserOut(ResponseModel):
    id: str
    issuer_id: str
    status: str
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    username_type: str
    username: str
    profile: JsonDict
    scopes: StrList
    security: JsonDict
    preferences: JsonDict
    custom_fields: JsonDict
    approval: dict[str, Any] | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: User) -> Self:
        return cls.model_validate(with_fields(
            row, security={**(row.security or {}), "password_set": row.password_hash is not None},
            approval=row.approval or None))


class UserListItem(ResponseModel):
    """No username: a keyed hash of it, for lists that must not show it."""

    user_id: str
    issuer_id: str
    username_hash: str
    username_type: str
    status: str
    store_id: str = STORE_ID
    region: str | None = None
    created_at: int
    # Required (not nullable) in the list model: a never-updated user reports its creation.
    updated_at: int

    @classmethod
    def of_user(cls, user: User, secret_key: str) -> Self:
        return cls.model_validate(with_fields(
            user, user_id=user.id, store_id=STORE_ID, region=None,
            username_hash=username_hash(secret_key, user.issuer_id, user.username_normalized),
            updated_at=user.updated_at or user.created_at))


def password_verifier_id(user: User) -> str:
    """One password per user, so its verifier id is derived from the user's id."""
    return "pwd_" + user.id.split("_", 1)[1]


class VerifierOut(ResponseModel):
    """A user's verifier: public facts only, never a hash or a TOTP seed. The password verifier has
    only the first six fields."""

    omit_if_none = ("name", "credential", "backup_codes_remaining", "usage_count", "last_used_at")

    id: str
    user_id: str
    type: str
    status: str
    created_at: int
    updated_at: int | None
    name: str | None = None
    credential: dict[str, Any] | None = None
    backup_codes_remaining: int | None = None
    usage_count: int | None = None
    last_used_at: int | None = None


def password_verifier(user: User) -> VerifierOut:
    created = user.password_changed_at or user.updated_at or user.created_at
    return VerifierOut(id=password_verifier_id(user), user_id=user.id, type="password",
                       status="active", created_at=created, updated_at=created)


class TotpEnrollment(ResponseModel):
    """A TOTP enrollment: the key, shown this once, until confirmed with a code."""

    enrollment_id: str
    secret: str
    provisioning_uri: str
    expires_at: int | None


class EnrollmentResult(ResponseModel):
    omit_if_none = ("error", "verifier_id", "backup_codes")

    success: bool
    error: str | None = None
    verifier_id: str | None = None
    backup_codes: list[str] | None = None


class CodeCheckResult(ResponseModel):
    omit_if_none = ("error", "remaining")

    success: bool
    error: str | None = None
    remaining: int | None = None


class BackupCodes(ResponseModel):
    """New backup codes, shown this once."""

    codes: list[str]


class RevokedCount(ResponseModel):
    revoked_count: int


class DeviceTrusted(ResponseModel):
    device_id: str
    expires_at: int
