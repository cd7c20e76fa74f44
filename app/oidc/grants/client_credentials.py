"""client_credentials grant (RFC 6749 §4.4): an access token only, never a refresh or ID token.

The hot path: the client is cached and verified without argon2 on repeat, the key set is cached,
the token is an ES256 JWT, and `machine.token.issued` goes through the metered event batcher, so a
warm request makes no database round trip.
"""

from __future__ import annotations

import time
from typing import Any

from app.oidc import tokens
from app.oidc.client_auth import CachedClient
from app.oidc.errors import UnauthorizedClient
from app.oidc.grants.common import Form, narrow_scopes, requested_scopes
from app.oidc.keys import KeySet

OIDC_ONLY = frozenset({"openid", "profile", "email", "offline_access"})


def issue(keys: KeySet, client: CachedClient, form: Form) -> tuple[dict[str, Any], dict[str, Any]]:
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
    body = {"access_token": tokens.sign_access_token(keys, claims), "token_type": "Bearer",
            "expires_in": ttl, "scope": " ".join(scopes)}
    return body, claims
