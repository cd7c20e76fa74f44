"""authorization_code grant (RFC 6749 §4.1.3) with PKCE S256 (RFC 7636) and OpenID Connect.

A code is single use. Presenting it again revokes everything its first redemption issued
(RFC 6749 §4.1.2, OAuth 2.1 §4.1.3). Errors that follow a write are returned, not raised, so the
write (the code marked used, the family revoked) commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id, now_ms
from app.events.service import record
from app.models.oidc import AuthorizationCode, LoginSession, OidcGrant
from app.oidc import pkce, tokens
from app.oidc.claims import load_active_user, organizations
from app.oidc.client_auth import CachedClient
from app.oidc.errors import InvalidGrant, InvalidRequest, InvalidTarget, OAuthError, UnauthorizedClient
from app.oidc.grants.common import (
    Form,
    IssueContext,
    grant_jkt,
    issue_user_tokens,
    revoke_grant,
    select_org,
)
from app.signing_key.cache import KeySet


async def exchange(session: AsyncSession, keys: KeySet, server_key: str, client: CachedClient, form: Form,
                   *, jkt: str | None = None) -> dict[str, Any] | OAuthError:
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("This client may not use the authorization_code grant")
    code = form.get("code")
    redirect_uri = form.get("redirect_uri")
    if not code or len(code) > 256:
        raise InvalidRequest("code is required")
    if not redirect_uri:
        raise InvalidRequest("redirect_uri is required")
    row = await session.scalar(
        select(AuthorizationCode)
        .where(AuthorizationCode.code_hash == tokens.token_hash(server_key, "code", code))
        .with_for_update())
    if row is None or row.issuer_id != keys.issuer_id or row.account_id != keys.account_id:
        raise InvalidGrant("The authorization code is invalid")
    if row.client_id != client.id:
        raise InvalidGrant("The authorization code was issued to another client")
    now = now_ms()
    if row.used_at is not None:
        if row.grant_id:
            await revoke_grant(session, row.account_id, row.grant_id, "code_replay")
        await record(session, type="auth.flow.replay-attempt", account_id=row.account_id,
                     issuer_id=row.issuer_id, user_id=row.user_id, client_id=client.id,
                     subject={"type": "authorization_code", "id": row.id},
                     data={"grant_id": row.grant_id, "revoked": bool(row.grant_id)},
                     auth={"type": "client", "client_id": client.id})
        return InvalidGrant("The authorization code was already used")
    row.used_at = now
    if row.expires_at <= now:
        return InvalidGrant("The authorization code has expired")
    if redirect_uri != row.redirect_uri:
        return InvalidGrant("redirect_uri does not match the authorization request")
    if not pkce.verify(form.get("code_verifier"), row.code_challenge):
        return InvalidGrant("PKCE verification failed")
    resources = form.getlist("resource") or list(row.resources)
    if any(r not in row.resources for r in resources):
        return InvalidTarget("resource was not part of the authorization request")
    login = await session.get(LoginSession, row.session_id)
    if login is None or login.status != "active" or login.expires_at <= now:
        return InvalidGrant("The sign-in session has ended")
    user = await load_active_user(session, row.account_id, row.issuer_id, row.user_id)
    if user is None:
        return InvalidGrant("The user is not active")
    orgs = await organizations(session, row.account_id, row.issuer_id, user.id)
    org_id = select_org(orgs, row.org_id)
    if row.org_id and org_id is None:
        return InvalidGrant("The user is no longer a member of the selected organization")
    grant = OidcGrant(id=new_id("grt"), account_id=row.account_id, issuer_id=row.issuer_id,
                      client_id=client.id, user_id=user.id, session_id=row.session_id, scope=row.scope,
                      org_id=org_id, resources=list(row.resources), auth_time=row.auth_time,
                      amr=list(row.amr), acr=row.acr, status="active", created_at=now,
                      dpop_jkt=grant_jkt(client, jkt))
    session.add(grant)
    row.grant_id = grant.id
    ctx = IssueContext(keys=keys, server_key=server_key, client=client, grant=grant, user=user, orgs=orgs,
                       jkt=jkt)
    body, refresh_id = await issue_user_tokens(
        session, ctx, nonce=row.nonce, with_refresh="refresh_token" in client.grant_types,
        resources=resources)
    login.access_token_issued_at = now
    login.last_activity_at = now
    if refresh_id:
        login.refresh_token_issued_at = now
    login.client_id = client.id
    await session.flush()
    return body
