"""Shared by the grants: issuing a user token set, revoking a grant family, form helpers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import constant_time_equals
from app.core.ids import new_id, now_ms
from app.events.service import record
from app.models.oidc import OidcGrant, RefreshToken
from app.models.user import User
from app.oidc import dpop, tokens
from app.oidc.claims import UserView, profile_claims
from app.oidc.client_auth import CachedClient
from app.oidc.errors import InvalidRequest, InvalidScope
from app.signing_key.cache import KeySet


class Form:
    """An x-www-form-urlencoded body: single-valued parameters, except the repeatable `resource`."""

    REPEATABLE = frozenset({"resource"})

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        self.multi: dict[str, list[str]] = {}
        for name, value in pairs:
            if name in self.REPEATABLE:
                self.multi.setdefault(name, []).append(value)
                continue
            if name in self.values:
                raise InvalidRequest(f"The {name} parameter is repeated")
            self.values[name] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def getlist(self, name: str) -> list[str]:
        return list(self.multi.get(name, []))

    def as_dict(self) -> dict[str, str]:
        return self.values


def requested_scopes(form: Form) -> list[str] | None:
    raw = form.get("scope")
    if raw is None:
        return None
    return [s for s in raw.split(" ") if s]


def narrow_scopes(requested: list[str] | None, granted: list[str]) -> list[str]:
    if requested is None:
        return granted
    extra = [s for s in requested if s not in granted]
    if extra:
        raise InvalidScope(f"Scopes not granted: {' '.join(extra)}")
    return [s for s in granted if s in requested]


async def revoke_grant(session: AsyncSession, account_id: str, grant_id: str, reason: str,
                       auth: dict[str, Any] | None = None) -> OidcGrant | None:
    """Revoke a whole family: the grant (its access tokens carry `gid`) and its refresh tokens,
    with its `session.updated` event. Returns the grant, or None when it was not active."""
    now = now_ms()
    grant = (await session.execute(
        update(OidcGrant)
        .where(OidcGrant.id == grant_id, OidcGrant.account_id == account_id, OidcGrant.status == "active")
        .values(status="revoked", revoked_reason=reason, updated_at=now)
        .returning(OidcGrant))).scalar_one_or_none()
    if grant is None:
        return None
    await session.execute(update(RefreshToken).where(RefreshToken.grant_id == grant_id,
                                                     RefreshToken.account_id == account_id,
                                                     RefreshToken.status == "active")
                          .values(status="revoked"))
    await record(session, type="session.updated", account_id=account_id, issuer_id=grant.issuer_id,
                 user_id=grant.user_id, client_id=grant.client_id,
                 subject={"type": "session", "id": grant.session_id or grant.id},
                 data={"grant_id": grant.id, "tokens": "revoked", "reason": reason},
                 auth=auth or {"type": "client", "client_id": grant.client_id})
    return grant


@dataclass(slots=True)
class GrantView:
    """What minting reads of a grant, without an ORM instance (the one-statement grants)."""

    id: str
    account_id: str
    scope: str
    session_id: str | None
    org_id: str | None
    auth_time: int
    amr: list[str]
    acr: str | None


@dataclass
class IssueContext:
    keys: KeySet
    server_key: str
    client: CachedClient
    grant: OidcGrant | GrantView
    user: User | UserView
    orgs: list[dict[str, Any]]
    # DPoP: the thumbprint the access token is bound to (`cnf.jkt`), if any.
    jkt: str | None = None


def select_org(orgs: list[dict[str, Any]], org_id: str | None) -> str | None:
    if org_id is None:
        return None
    return org_id if any(o.get("id") == org_id for o in orgs) else None


def new_refresh_token(server_key: str) -> tuple[str, str, str]:
    """(row id, the token itself, its HMAC): only the HMAC is stored."""
    raw = tokens.opaque_token("rt")
    return new_id("rt"), raw, tokens.token_hash(server_key, "refresh", raw)


def grant_jkt(client: CachedClient, jkt: str | None) -> str | None:
    """The key a new grant's refresh tokens are bound to: a public client's DPoP key (RFC 9449 §5;
    a confidential client's refresh tokens are bound to its authentication instead)."""
    return jkt if not client.confidential else None


def check_grant_jkt(bound: str | None, jkt: str | None) -> None:
    """A bound refresh token is used only with a proof of its key."""
    if bound is not None and (jkt is None or not constant_time_equals(bound, jkt)):
        raise dpop.InvalidDpopProof("The refresh token is bound to another DPoP key")


def refresh_ttl_ms(client: CachedClient) -> int:
    return (client.refresh_token_ttl or tokens.REFRESH_TOKEN_TTL) * 1000


def mint_user_tokens(ctx: IssueContext, *, nonce: str | None, resources: list[str],
                     scope: str | None = None) -> dict[str, Any]:
    """The signed part of a user grant's token response (access token, and ID token for `openid`)."""
    now = int(time.time())
    grant, client, user = ctx.grant, ctx.client, ctx.user
    scope = scope if scope is not None else grant.scope
    scopes = scope.split()
    scope_set = set(scopes)
    ttl = client.access_token_ttl or tokens.ACCESS_TOKEN_TTL
    access_claims: dict[str, Any] = {
        "iss": ctx.keys.issuer_url, "sub": user.id,
        "aud": resources[0] if len(resources) == 1 else (resources or client.id),
        "client_id": client.id, "iat": now, "exp": now + ttl, "jti": tokens.new_jti(),
        "scope": scope, "gid": grant.id, "auth_time": grant.auth_time,
        "organizations": ctx.orgs, "dat": {"type": "identity"},
    }
    if grant.acr:
        access_claims["acr"] = grant.acr
        access_claims["amr"] = list(grant.amr)
    if grant.session_id:
        access_claims["sid"] = grant.session_id
    if grant.org_id:
        access_claims["org_id"] = grant.org_id
    body: dict[str, Any] = {"token_type": "Bearer", "expires_in": ttl, "scope": scope}
    dpop.bind(access_claims, body, ctx.jkt)
    body["access_token"] = tokens.sign_access_token(ctx.keys, access_claims)
    if "openid" in scope_set:
        id_claims: dict[str, Any] = {
            "iss": ctx.keys.issuer_url, "sub": user.id, "aud": client.id, "iat": now,
            "exp": now + tokens.ID_TOKEN_TTL, "auth_time": grant.auth_time,
            "organizations": ctx.orgs,
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        if grant.acr:
            id_claims["acr"] = grant.acr
            id_claims["amr"] = list(grant.amr)
        if grant.session_id:
            id_claims["sid"] = grant.session_id
        if grant.org_id:
            id_claims["org_id"] = grant.org_id
        id_claims.update(profile_claims(user, scope_set))
        body["id_token"] = tokens.sign_id_token(ctx.keys, id_claims)
    return body


async def issue_user_tokens(session: AsyncSession, ctx: IssueContext, *, nonce: str | None,
                            with_refresh: bool, resources: list[str], scope: str | None = None
                            ) -> tuple[dict[str, Any], str | None]:
    """The token response for a user grant; also returns the new refresh token's id (if any)."""
    body = mint_user_tokens(ctx, nonce=nonce, resources=resources, scope=scope)
    refresh_id = None
    if with_refresh:
        refresh_id, raw, token_hash = new_refresh_token(ctx.server_key)
        now = now_ms()
        session.add(RefreshToken(id=refresh_id, token_hash=token_hash, account_id=ctx.grant.account_id,
                                 grant_id=ctx.grant.id, status="active", created_at=now,
                                 expires_at=now + refresh_ttl_ms(ctx.client)))
        body["refresh_token"] = raw
    return body, refresh_id
