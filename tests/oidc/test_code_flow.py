"""The code flow end to end with the official authpi_idp SDK against a live server."""

from __future__ import annotations

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_idp import IdpClient
from authpi_idp.types import LogoutOptions

from tests.oidc.helpers import LOGOUT_REDIRECT, REDIRECT, make_setup, sign_in


@pytest.fixture
async def setup(admin: AuthPIAdmin):
    return await make_setup(admin)


class TestIdpClientFlow:
    async def test_full_flow(self, live_server, setup, admin: AuthPIAdmin, pg) -> None:
        issuer_url = setup.issuer_url(live_server.url)
        async with IdpClient(issuer_url, setup.web_id, redirect_uri=REDIRECT,
                             client_secret=setup.web_secret) as idp, httpx.AsyncClient() as browser:
            auth = idp.create_authorization_url(scopes=["openid", "profile", "email"], org=setup.org_id)
            final = await sign_in(browser, auth.url, setup.username)
            assert final.status_code == 302, final.text
            callback = final.headers["location"]
            assert callback.startswith(REDIRECT + "?code=")
            assert f"iss={issuer_url}".replace(":", "%3A").replace("/", "%2F") in callback
            agent = await idp.exchange_callback(callback, auth)
            assert agent.id == setup.user_id
            assert agent.org_id == setup.org_id
            info = await idp.get_user_info(agent)
            assert info.sub == setup.user_id
            assert info.email == setup.username
            assert [o.id for o in info.organizations] == [setup.org_id]
            assert info.organizations[0].scopes == ["invoices:read", "invoices:write"]
            # The access token is a Bearer credential for the admin API's /v1/me.
            me = await browser.get(f"{live_server.url}/v1/me",
                                   headers={"authorization": f"Bearer {agent.tokens.access_token}"})
            assert me.status_code == 200, me.text
            assert me.json()["data"]["user_id"] == setup.user_id
            assert me.json()["data"]["organizations"][0]["org_id"] == setup.org_id
            old_refresh = agent.tokens.refresh_token
            refreshed = await idp.refresh(agent)
            assert refreshed.tokens.refresh_token != old_refresh
            assert refreshed.id == setup.user_id
            await idp.revoke_token(refreshed.tokens.refresh_token, "refresh_token")
            with pytest.raises(Exception):  # noqa: B017,PT011 - the SDK's RefreshError
                await idp.refresh(refreshed)
            logout = idp.create_logout_url(LogoutOptions(id_token_hint=refreshed.tokens.id_token,
                                                          post_logout_redirect_uri=LOGOUT_REDIRECT,
                                                          state="bye"))
            out = await browser.get(logout)
            assert out.status_code == 302
            assert out.headers["location"] == LOGOUT_REDIRECT + "?state=bye"
        types = [e.type for e in (await admin.events.list(limit=100)).data]
        for expected in ("session.created", "user.verification.succeeded", "session.token-refreshed",
                         "session.terminated"):
            assert expected in types
        sessions = (await admin.issuer(setup.issuer_id).user(setup.user_id).sessions.list()).data
        assert sessions[0].status == "revoked"

    async def test_client_credentials(self, live_server, setup, admin: AuthPIAdmin) -> None:
        issuer_url = setup.issuer_url(live_server.url)
        async with IdpClient(issuer_url, setup.m2m_id, client_secret=setup.m2m_secret) as idp:
            agent = await idp.client_credentials(["invoices:read"])
            assert agent.tokens.refresh_token is None
            assert agent.tokens.id_token is None
            assert agent.has_access("read", "invoices")
            assert not agent.has_access("write", "invoices")
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{issuer_url}/token", data={"grant_type": "client_credentials"},
                                auth=(setup.m2m_id, setup.m2m_secret))
            assert r.status_code == 200
            body = r.json()
            assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
            assert body["scope"] == "invoices:read invoices:write"
            bad = await http.post(f"{issuer_url}/token", data={"grant_type": "client_credentials"},
                                  auth=(setup.m2m_id, "wrong"))
            assert bad.status_code == 401
            assert bad.json()["error"] == "invalid_client"
