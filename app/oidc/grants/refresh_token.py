"""refresh_token grant (RFC 6749 §6) with rotation: every refresh returns a new refresh token, and
presenting a rotated one again (reuse: a stolen copy or a replay) revokes the whole family."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import now_ms
from app.events.service import record
from app.models.oidc import LoginSession, OidcGrant, RefreshToken
from app.models.user import User
from app.oidc import tokens
from app.oidc.claims import organizations
from app.oidc.client_auth import CachedClient
from app.oidc.errors import InvalidGrant, InvalidRequest, InvalidTarget, OAuthError, UnauthorizedClient
from app.oidc.grants.common import (
    Form,
    IssueContext,
    check_grant_jkt,
    issue_user_tokens,
    narrow_scopes,
    requested_scopes,
    revoke_grant,
    select_org,
)
from app.signing_key.cache import KeySet


async def refresh(session: AsyncSession, keys: KeySet, server_key: str, client: CachedClient, form: Form,
                  *, jkt: str | None = None) -> dict[str, Any] | OAuthError:
    if "refresh_token" not in client.grant_types:
        raise UnauthorizedClient("This client may not use the refresh_token grant")
    raw = form.get("refresh_token")
    if not raw or len(raw) > 256:
        raise InvalidRequest("refresh_token is required")
    # One round trip for the token and its family, both locked: concurrent presentations of one
    # token serialise here, so exactly one rotates it and the other is seen as reuse.
    found = (await session.execute(
        select(RefreshToken, OidcGrant)
        .join(OidcGrant, and_(OidcGrant.id == RefreshToken.grant_id,
                              OidcGrant.account_id == RefreshToken.account_id))
        .where(RefreshToken.token_hash == tokens.token_hash(server_key, "refresh", raw))
        .with_for_update())).first()
    if found is None:
        raise InvalidGrant("The refresh token is invalid")
    row, grant = found
    if grant.issuer_id != keys.issuer_id or grant.account_id != keys.account_id:
        raise InvalidGrant("The refresh token is invalid")
    if grant.client_id != client.id:
        raise InvalidGrant("The refresh token was issued to another client")
    now = now_ms()
    if row.status == "rotated":
        await revoke_grant(session, grant.account_id, grant.id, "refresh_reuse")
        await record(session, type="session.compromised", account_id=grant.account_id,
                     issuer_id=grant.issuer_id, user_id=grant.user_id, client_id=client.id,
                     subject={"type": "session", "id": grant.session_id or grant.id},
                     data={"reason": "refresh_token_reuse", "grant_id": grant.id},
                     auth={"type": "client", "client_id": client.id})
        return InvalidGrant("The refresh token was already used; the grant is revoked")
    if row.status != "active" or grant.status != "active" or row.expires_at <= now:
        raise InvalidGrant("The refresh token is no longer valid")
    check_grant_jkt(grant.dpop_jkt, jkt)
    # A refresh may narrow the resources and scopes, never widen them.
    resources = form.getlist("resource") or list(grant.resources)
    if any(r not in grant.resources for r in resources):
        raise InvalidTarget("resource was not part of the grant")
    scopes = narrow_scopes(requested_scopes(form), grant.scope.split())
    # The user and the sign-in session in one round trip.
    both = (await session.execute(
        select(User, LoginSession)
        .outerjoin(LoginSession, and_(LoginSession.id == grant.session_id,
                                      LoginSession.account_id == grant.account_id))
        .where(User.id == grant.user_id, User.account_id == grant.account_id,
               User.issuer_id == grant.issuer_id))).first()
    user, login = (both[0], both[1]) if both is not None else (None, None)
    if grant.session_id and (login is None or login.status != "active"):
        raise InvalidGrant("The sign-in session has ended")
    if user is None or user.status != "active":
        await revoke_grant(session, grant.account_id, grant.id, "user_inactive")
        return InvalidGrant("The user is not active")
    orgs = await organizations(session, grant.account_id, grant.issuer_id, user.id)
    if grant.org_id and select_org(orgs, grant.org_id) is None:
        await revoke_grant(session, grant.account_id, grant.id, "membership_removed")
        return InvalidGrant("The user is no longer a member of the selected organization")
    row.status = "rotated"
    row.used_at = now
    ctx = IssueContext(keys=keys, server_key=server_key, client=client, grant=grant, user=user, orgs=orgs,
                       jkt=jkt)
    # A narrowed scope applies to this response only; the family keeps what was granted.
    body, _ = await issue_user_tokens(session, ctx, nonce=None, with_refresh=True, resources=resources,
                                      scope=" ".join(scopes))
    if login is not None:
        login.refresh_count = (login.refresh_count or 0) + 1
        login.refresh_token_issued_at = now
        login.access_token_issued_at = now
        login.last_activity_at = now
        login.updated_at = now
    await record(session, type="session.token-refreshed", account_id=grant.account_id,
                 issuer_id=grant.issuer_id, user_id=grant.user_id, client_id=client.id,
                 subject={"type": "session", "id": grant.session_id or grant.id},
                 data={"grant_id": grant.id, "scope": " ".join(scopes)},
                 auth={"type": "client", "client_id": client.id})
    await session.flush()
    return body
