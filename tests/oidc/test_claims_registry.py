"""Access-token claims are checked by joserfc's JWTClaimsRegistry: tokens correctly signed with the
issuer's own key but with a wrong, missing or expired claim are refused wherever tokens are read."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.oidc import tokens
from app.oidc.runtime import runtime
from tests.oidc.helpers import code_tokens, make_setup
from tests.oidc.test_security import _assert_refused_everywhere, _userinfo


@pytest.fixture
async def setup(admin: AuthPIAdmin):
    return await make_setup(admin)


async def _signed(app: FastAPI, setup, client: httpx.AsyncClient, **changes: Any) -> str:
    """The claims of a real access token, changed, signed with the issuer's real ES256 key."""
    real = await code_tokens(client, setup)
    _, claims = tokens.peek(real["access_token"])
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    rt = runtime(app)
    keys = await rt.keys.get(rt.session_factory(), setup.issuer_id)
    return tokens.sign_access_token(keys, claims)


class TestClaims:
    async def test_an_unchanged_resigned_token_is_accepted(self, app: FastAPI, client, setup) -> None:
        assert await _userinfo(client, setup, await _signed(app, setup, client)) == 200

    @pytest.mark.parametrize("changes", [
        {"exp": None},                                   # no expiry
        {"exp": "tomorrow"},                             # not a NumericDate
        {"iss": "http://testserver/i_00000000000000000000000000"},  # another issuer's URL
        {"iat": int(time.time()) + 3600},                # issued in the future
        {"nbf": int(time.time()) + 3600},                # not yet valid
    ])
    async def test_a_bad_claim_is_refused_everywhere(self, app: FastAPI, client, setup,
                                                     changes: dict[str, Any]) -> None:
        await _assert_refused_everywhere(client, setup, await _signed(app, setup, client, **changes))

    async def test_expiry_is_enforced_with_leeway(self, app: FastAPI, client, setup) -> None:
        now = int(time.time())
        within = await _signed(app, setup, client, exp=now - tokens.LEEWAY // 2)
        assert await _userinfo(client, setup, within) == 200
        await _assert_refused_everywhere(client, setup,
                                         await _signed(app, setup, client, exp=now - tokens.LEEWAY - 5))

    async def test_an_expired_id_token_hint_is_still_verified(self, app: FastAPI, client, setup) -> None:
        rt = runtime(app)
        keys = await rt.keys.get(rt.session_factory(), setup.issuer_id)
        past = {"iss": keys.issuer_url, "sub": setup.user_id, "aud": setup.web_id, "iat": 1, "exp": 2}
        hint = tokens.sign_id_token(keys, past)
        assert tokens.verify_jwt(hint, keys, typ=None, allow_expired=True).claims["sub"] == setup.user_id
        with pytest.raises(tokens.TokenInvalid):
            tokens.verify_jwt(hint, keys, typ=None)
        # Expired is allowed there; a wrong issuer never is.
        forged = tokens.sign_id_token(keys, {**past, "iss": "http://evil.example"})
        with pytest.raises(tokens.TokenInvalid):
            tokens.verify_jwt(forged, keys, typ=None, allow_expired=True)
