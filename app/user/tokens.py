"""Personal access tokens (PATs) of users: `tok_<id>.<secret>`, shown once at creation.

The secret is 256 random bits, so an HMAC under the server key is as strong a verifier as argon2
here (nothing to brute-force) and costs microseconds on every Bearer request; a stolen database
without the server key verifies nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import Request
from pydantic import Field, StringConstraints, field_validator
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import BearerVerifier, Principal
from app.core.crypto import constant_time_equals, generate_secret, hmac_sha256
from app.core.errors import Conflict, Unauthorized
from app.core.ids import looks_like_id, new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.responses import JsonDict, ResponseModel, StrList, with_fields
from app.core.rows import one_or_404
from app.core.scopes import within
from app.core.validation import Description, Metadata, Name, ScopeList, StrictModel, Tags, TimestampMs
from app.events.service import record
from app.membership.service import organizations_claim
from app.models.personal_token import PersonalToken
from app.models.user import User
from app.organization.service import touch

MAX_ACTIVE_PER_USER = 50


class Restrictions(StrictModel):
    scopes: ScopeList = []


class TokenCreate(StrictModel):
    name: Name
    description: Description | None = None
    tags: Tags = []
    # Either `scopes` or `restrictions.scopes` (the ApiKey shape); both are accepted.
    scopes: ScopeList | None = None
    restrictions: Restrictions | None = None
    audience: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    expires_at: TimestampMs | None = None
    metadata: Metadata | None = None

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: int | None) -> int | None:
        if value is not None and value <= now_ms():
            raise ValueError("expires_at must be in the future (Unix milliseconds)")
        return value


class TokenRevoke(StrictModel):
    status_reason: Annotated[str, Field(max_length=1024)] | None = None
    reason: Annotated[str, Field(max_length=1024)] | None = None


def _secret_hash(server_key: str, token_id: str, secret: str) -> str:
    return hmac_sha256(server_key, f"pat:{token_id}:{secret}")


def effective_status(t: PersonalToken) -> str:
    if t.status == "active" and t.expires_at is not None and t.expires_at <= now_ms():
        return "expired"
    return t.status


class PersonalTokenOut(ResponseModel):
    id: str
    user_id: str
    issuer_id: str
    type: str = "personal_token"
    name: str
    description: str | None
    tags: StrList
    restrictions: JsonDict
    status: str
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    expires_at: int | None
    audience: str | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    last_used_at: int | None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: PersonalToken) -> Self:
        return cls.model_validate(with_fields(row, type="personal_token", status=effective_status(row)))



class PersonalTokenListItem(ResponseModel):
    id: str
    user_id: str
    issuer_id: str
    status: str
    name: str
    tags: StrList
    scopes: list[str]
    description: str | None
    audience: str | None
    expires_at: int | None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: PersonalToken) -> Self:
        return cls.model_validate(with_fields(row, status=effective_status(row),
                                              scopes=list((row.restrictions or {}).get("scopes", []))))


class PersonalTokenCreated(PersonalTokenOut):
    """The create answer: `token_plain`, shown this once."""

    token_plain: str


def with_secret(token: PersonalToken, plain: str) -> object:
    return with_fields(token, type="personal_token", status=effective_status(token), token_plain=plain)


async def _event(session: AsyncSession, t: PersonalToken, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=t.account_id, issuer_id=t.issuer_id,
                 user_id=t.user_id, subject={"type": "personal_token", "id": t.id,
                                             "user_id": t.user_id}, data=data, auth=auth)


async def create_token(session: AsyncSession, user: User, body: TokenCreate, *, server_key: str,
                       auth: Principal) -> tuple[PersonalToken, str]:
    if user.status != "active":
        raise Conflict("Only an active user can hold personal tokens")
    active = await session.scalars(select(PersonalToken.id).where(
        PersonalToken.user_id == user.id, PersonalToken.status == "active"))
    if len(active.all()) >= MAX_ACTIVE_PER_USER:
        raise Conflict(f"A user holds at most {MAX_ACTIVE_PER_USER} active personal tokens")
    scopes = list(dict.fromkeys((body.scopes or []) + (body.restrictions.scopes if body.restrictions
                                                        else [])))
    secret = generate_secret()
    t = PersonalToken(id=new_id("tok"), account_id=user.account_id, issuer_id=user.issuer_id,
                      user_id=user.id, name=body.name, description=body.description, tags=body.tags,
                      restrictions={"scopes": scopes}, audience=body.audience,
                      expires_at=body.expires_at, status="active", metadata_=body.metadata or {},
                      created_at=now_ms())
    t.secret_hash = _secret_hash(server_key, t.id, secret)
    session.add(t)
    await session.flush()
    await _event(session, t, "user.personal-token.created", auth,
                 {"name": t.name, "scopes": scopes, "expires_at": t.expires_at})
    return t, f"{t.id}.{secret}"


async def list_tokens(session: AsyncSession, user: User, params: PageParams, status: str | None
                      ) -> tuple[list[PersonalToken], bool, str | None]:
    stmt: Select[Any] = select(PersonalToken).where(PersonalToken.user_id == user.id,
                                                    PersonalToken.account_id == user.account_id)
    now = now_ms()
    if status == "expired":
        stmt = stmt.where(PersonalToken.status == "active", PersonalToken.expires_at <= now)
    elif status == "active":
        stmt = stmt.where(PersonalToken.status == "active",
                          (PersonalToken.expires_at.is_(None)) | (PersonalToken.expires_at > now))
    elif status:
        stmt = stmt.where(PersonalToken.status == status)
    return await paginate(session, stmt, PersonalToken.id, params)


async def get_token(session: AsyncSession, account_id: str, token_id: str,
                    for_update: bool = False) -> PersonalToken:
    stmt = select(PersonalToken).where(PersonalToken.id == token_id,
                                       PersonalToken.account_id == account_id)
    return await one_or_404(session, stmt, "token", for_update=for_update)


async def revoke_token(session: AsyncSession, t: PersonalToken, reason: str | None,
                       auth: Principal) -> PersonalToken:
    if t.status == "revoked":
        return t  # revoking twice is a no-op, not an error: the caller's intent already holds
    t.status, t.status_at, t.status_by, t.status_reason = "revoked", now_ms(), auth.actor_id, reason
    touch(t)
    await session.flush()
    await _event(session, t, "user.personal-token.updated", auth, {"status": "revoked",
                                                                     "reason": reason})
    return t


async def delete_token(session: AsyncSession, t: PersonalToken, auth: Principal) -> None:
    await session.delete(t)
    await session.flush()
    await _event(session, t, "user.personal-token.deleted", auth, {"name": t.name})


async def verify_personal_token(session: AsyncSession, token: str, *, server_key: str
                                ) -> Principal | None:
    """The Principal of a live PAT (`tok_<id>.<secret>`), or None. For the Bearer verifier.

    Checks the secret in constant time, the token's status and expiry, and that its user is active.
    `extra["organizations"]` lists the user's organizations with their scopes narrowed to the
    token's restriction (when it has one), the shape /v1/me reports.
    """
    token_id, sep, secret = token.partition(".")
    if not sep or not secret or len(token) > 512 or not looks_like_id(token_id, "tok"):
        return None
    t = await session.get(PersonalToken, token_id)
    expected = t.secret_hash if t is not None else "0" * 64
    # Compare even for unknown ids, so timing does not tell which token ids exist.
    ok = constant_time_equals(expected, _secret_hash(server_key, token_id, secret))
    if t is None or not ok or effective_status(t) != "active":
        return None
    user = await session.scalar(select(User).where(User.id == t.user_id,
                                                   User.account_id == t.account_id))
    if user is None or user.status != "active":
        return None
    scopes = list(t.restrictions.get("scopes", []))
    orgs = await organizations_claim(session, account_id=t.account_id, issuer_id=t.issuer_id,
                                     user_id=t.user_id)
    organizations = [
        {"org_id": o["id"],
         "scopes": [s for s in o["scopes"] if not within([s], scopes)] if scopes else o["scopes"]}
        for o in orgs]
    return Principal(type="personal_token", account_id=t.account_id, account_level=False,
                     scopes=tuple(scopes), issuer_id=t.issuer_id, user_id=t.user_id,
                     extra={"token_id": t.id, "organizations": organizations})


def with_personal_tokens(fallback: BearerVerifier) -> BearerVerifier:
    """A Bearer verifier answering `tok_...` values as personal tokens, anything else by `fallback`."""

    async def verify(request: Request, token: str) -> Principal:
        if not token.startswith("tok_"):
            return await fallback(request, token)
        async with request.app.state.db.sessionmaker() as session:
            principal = await verify_personal_token(session, token,
                                                    server_key=request.app.state.secret_key)
        if principal is None:
            raise Unauthorized("Invalid, expired or revoked personal token")
        return principal

    return verify
