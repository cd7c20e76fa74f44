"""client_credentials grant (RFC 6749 §4.4): an access token only, never a refresh or ID token.

The hot path: the client is cached and verified without argon2 on repeat, the key set is cached,
the token is an ES256 JWT, and `machine.token.issued` goes through the metered event batcher, so a
warm request makes no database round trip.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request

from app.agent.verification import VerifiedAgent
from app.oidc import dpop, tokens
from app.oidc.client_auth import CachedClient, authenticate_agent_client
from app.oidc.errors import UnauthorizedClient
from app.oidc.events import metered_occurrence
from app.oidc.grants.common import Form, narrow_scopes, requested_scopes
from app.signing_key.cache import KeySet

OIDC_ONLY = frozenset({"openid", "profile", "email", "offline_access"})
AGENT_TOKEN_TTL = 300  # agents' access tokens last 5 minutes (SDK-CONTRACT §4.3)


def issue(keys: KeySet, client: CachedClient, form: Form, jkt: str | None = None
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(token response, claims) for the client itself."""
    if "client_credentials" not in client.grant_types or not client.confidential:
        raise UnauthorizedClient("This client may not use the client_credentials grant")
    allowed = [s for s in client.scopes if s not in OIDC_ONLY]
    scopes = narrow_scopes(requested_scopes(form), allowed)
    now = int(time.time())
    ttl = client.access_token_ttl or tokens.CLIENT_TOKEN_TTL
    claims: dict[str, Any] = {
        "iss": keys.issuer_url, "sub": client.id, "aud": client.id, "client_id": client.id,
        "iat": now, "exp": now + ttl, "jti": tokens.new_jti(), "scope": " ".join(scopes),
        "dat": {"type": "client"},
    }
    body: dict[str, Any] = {"token_type": "Bearer", "expires_in": ttl, "scope": " ".join(scopes)}
    dpop.bind(claims, body, jkt)
    body["access_token"] = tokens.sign_access_token(keys, claims)
    return body, claims


def issue_agent(keys: KeySet, agent: VerifiedAgent, form: Form, jkt: str | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(token response, claims) for an agent: `sub` is the agent id, 5 minutes, no refresh token."""
    scopes = narrow_scopes(requested_scopes(form), [s for s in agent.scopes if s not in OIDC_ONLY])
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": keys.issuer_url, "sub": agent.agent_id, "aud": agent.agent_id, "client_id": agent.agent_id,
        "iat": now, "exp": now + AGENT_TOKEN_TTL, "jti": tokens.new_jti(), "scope": " ".join(scopes),
        "dat": {"type": "agent"},
    }
    body: dict[str, Any] = {"token_type": "Bearer", "expires_in": AGENT_TOKEN_TTL,
                            "scope": " ".join(scopes)}
    dpop.bind(claims, body, jkt)
    body["access_token"] = tokens.sign_access_token(keys, claims)
    return body, claims


async def agent_token(request: Request, keys: KeySet, creds: tuple[str, str | None, bool],
                      form: Form, jkt: str | None = None) -> dict[str, Any]:
    """The whole agent path of the grant: authenticate, mint, and meter `machine.token.issued`."""

    agent = await authenticate_agent_client(request, keys.issuer_id, keys.account_id, creds)
    body, claims = issue_agent(keys, agent, form, jkt)
    # The row template rides on the cached verification, as a client's does on its cache entry.
    metered_occurrence(request.app, agent,
                       {"jti": claims["jti"], "scope": claims["scope"], "exp": claims["exp"]},
                       type="machine.token.issued", account_id=keys.account_id,
                       issuer_id=keys.issuer_id, client_id=agent.agent_id,
                       subject={"type": "agent", "id": agent.agent_id},
                       auth={"type": "agent", "agent_id": agent.agent_id})
    return body
