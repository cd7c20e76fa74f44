"""panva's openid-client (Node) drives DPoP and PAR against a live issuer that requires DPoP nonces:
DPoP `client_credentials`, `/userinfo`, `/v1/me` and a bound refresh; `buildAuthorizationUrlWithPAR`
through the hosted login."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from authpi_admin import AuthPIAdmin

from app.main import create_app
from tests.conftest import make_settings
from tests.e2e.test_oidc_relying_parties import NODE_DIR
from tests.e2e.test_oidc_relying_parties import _node as node_script
from tests.fixtures.server import LiveServer, free_port
from tests.oidc.helpers import OidcSetup, make_setup, sign_in

PUBLIC_REDIRECT = "http://127.0.0.1/callback"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="Node 20 is not installed"),
    pytest.mark.skipif(not (NODE_DIR / "node_modules" / "openid-client").exists(),
                       reason="run `npm ci` (or `npm install`) in tests/e2e/node first"),
]


@pytest.fixture(scope="module")
def nonce_server(database_url: str) -> Iterator[LiveServer]:
    """A live server whose DPoP proofs must carry its nonce (openid-client retries with it)."""
    port = free_port()
    application = create_app(make_settings(public_url=f"http://127.0.0.1:{port}", port=port,
                                           dpop_nonce_required=True), database_url=database_url)
    server = LiveServer(application, port).start()
    yield server
    server.stop()


async def _node(*args: str) -> dict:
    return await node_script(*args, script="dpop_par.mjs")


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    s = await make_setup(admin)
    await admin.issuer(s.issuer_id).clients.update(s.public_id, {"settings": {
        "scopes": ["openid", "profile", "offline_access"],
        "openid": {"application_type": "native", "grant_types": ["authorization_code", "refresh_token"],
                   "redirect_uris": [PUBLIC_REDIRECT], "require_pushed_authorization_requests": True}}})
    return s


class TestOpenidClientDpop:
    async def test_client_credentials_userinfo_and_me(self, nonce_server: LiveServer,
                                                      setup: OidcSetup) -> None:
        out = await _node("cc", setup.issuer_url(nonce_server.url), setup.m2m_id, setup.m2m_secret)
        assert out["token_type"].lower() == "dpop"
        assert out["cnf"] == {"jkt": out["jkt"]}
        assert out["userinfo"] == {"sub": setup.m2m_id, "organizations": []}
        assert out["me_status"] == 200
        assert out["me"]["data"]["issuer_id"] == setup.issuer_id
        assert out["bare_status"] == 401


class TestOpenidClientPar:
    async def test_par_code_flow_with_dpop_bound_refresh(self, nonce_server: LiveServer,
                                                         setup: OidcSetup) -> None:
        issuer = setup.issuer_url(nonce_server.url)
        start = await _node("start", issuer, setup.public_id, PUBLIC_REDIRECT)
        assert "request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A" in start["url"]
        assert "code_challenge" not in start["url"]  # everything else was pushed
        async with httpx.AsyncClient() as browser:
            final = await sign_in(browser, start["url"], setup.username)
            assert final.status_code == 302, final.text
            # The request_uri was used: presenting it again is refused.
            again = await browser.get(start["url"])
            assert again.status_code == 400
        done = await _node("finish", issuer, setup.public_id, PUBLIC_REDIRECT, final.headers["location"],
                           start["verifier"], start["state"], start["nonce"])
        assert done["claims"]["sub"] == setup.user_id
        assert done["userinfo"]["sub"] == setup.user_id
        assert done["token_type"].lower() == "dpop"
        assert done["refreshed_type"].lower() == "dpop"
        assert done["cnf"] == {"jkt": done["jkt"]}
        assert done["foreign"] == "invalid_dpop_proof"
