"""Token contents and lifecycle: ID token claims, resources, scope narrowing, user and membership
changes visible at the next refresh, prompt/max_age, and token endpoint errors."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc.helpers import REDIRECT, authorize_params, code_tokens, get_code, make_setup, pkce_pair

BASE = "http://testserver"


@pytest.fixture
async def setup(admin: AuthPIAdmin):
    return await make_setup(admin)


async def _verify(client: httpx.AsyncClient, setup, token: str) -> tuple[dict, dict]:
    keys = KeySet.import_key_set((await client.get(f"/{setup.issuer_id}/jwks.json")).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    return dict(decoded.header), dict(decoded.claims)


async def _refresh(client: httpx.AsyncClient, setup, refresh_token: str, **extra) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": setup.web_id,
            "client_secret": setup.web_secret}
    data.update(extra)
    return await client.post(f"/{setup.issuer_id}/token", data=data)


class TestIdToken:
    async def test_claims(self, client: httpx.AsyncClient, setup) -> None:
        tokens = await code_tokens(client, setup)
        header, claims = await _verify(client, setup, tokens["id_token"])
        assert header["alg"] == "RS256"
        assert claims["iss"] == f"{BASE}/{setup.issuer_id}"
        assert claims["sub"] == setup.user_id
        assert claims["aud"] == setup.web_id
        assert claims["nonce"] == "n-1"
        assert claims["exp"] > time.time() > claims["iat"] - 5
        assert isinstance(claims["auth_time"], int)
        assert claims["sid"].startswith("s_")
        assert claims["email"] == setup.username
        assert claims["email_verified"] is False
        org = claims["organizations"][0]
        assert org["id"] == setup.org_id
        assert org["title"] == "Globex Corp"
        assert org["scopes"] == ["invoices:read", "invoices:write"]
        assert isinstance(org["joined_at"], int)
        assert "org_id" not in claims

    async def test_access_token_is_rfc9068(self, client: httpx.AsyncClient, setup) -> None:
        tokens = await code_tokens(client, setup)
        header, claims = await _verify(client, setup, tokens["access_token"])
        assert header["typ"] == "at+jwt"
        assert header["alg"] == "ES256"
        for name in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"):
            assert name in claims
        assert tokens["expires_in"] == claims["exp"] - claims["iat"]

    async def test_selected_org(self, client: httpx.AsyncClient, setup) -> None:
        code, verifier = await get_code(client, setup, org=setup.org_id)
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}, auth=(setup.web_id, setup.web_secret))  # client_secret_basic
        assert r.status_code == 200, r.text
        _, claims = await _verify(client, setup, r.json()["id_token"])
        assert claims["org_id"] == setup.org_id
        refreshed = await _refresh(client, setup, r.json()["refresh_token"])
        _, again = await _verify(client, setup, refreshed.json()["id_token"])
        assert again["org_id"] == setup.org_id
        info = await client.get(f"/{setup.issuer_id}/userinfo",
                                headers={"authorization": f"Bearer {refreshed.json()['access_token']}"})
        assert info.json()["org_id"] == setup.org_id


class TestResources:
    async def test_resource_is_the_audience_and_can_only_narrow(self, client: httpx.AsyncClient,
                                                                setup) -> None:
        verifier, challenge = pkce_pair()
        params = list(authorize_params(setup, challenge).items()) + [
            ("resource", "https://api.example.com"), ("resource", "https://files.example.com")]
        from tests.oidc.helpers import sign_in

        r = await sign_in(client, f"/{setup.issuer_id}/authorize?" + urlencode(params), setup.username)
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        form = urlencode([
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT),
            ("code_verifier", verifier), ("client_id", setup.web_id), ("client_secret", setup.web_secret),
            ("resource", "https://api.example.com")])
        r = await client.post(f"/{setup.issuer_id}/token", content=form,
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text
        _, claims = await _verify(client, setup, r.json()["access_token"])
        assert claims["aud"] == "https://api.example.com"
        # Omitted on refresh: the grant's stored selection.
        wide = await _refresh(client, setup, r.json()["refresh_token"])
        _, claims = await _verify(client, setup, wide.json()["access_token"])
        assert claims["aud"] == ["https://api.example.com", "https://files.example.com"]
        other = await _refresh(client, setup, wide.json()["refresh_token"], resource="https://evil.example.com")
        assert other.json()["error"] == "invalid_target"


class TestScopeNarrowing:
    async def test_refresh_may_narrow_never_widen(self, client: httpx.AsyncClient, setup) -> None:
        tokens = await code_tokens(client, setup)
        narrow = await _refresh(client, setup, tokens["refresh_token"], scope="openid")
        assert narrow.json()["scope"] == "openid"
        wider = await _refresh(client, setup, narrow.json()["refresh_token"], scope="openid offline_access")
        assert wider.json()["error"] == "invalid_scope"


class TestChangesShowAtRefresh:
    async def test_blocked_user_cannot_refresh(self, client: httpx.AsyncClient, setup, admin) -> None:
        tokens = await code_tokens(client, setup)
        await admin.issuer(setup.issuer_id).users.update(setup.user_id, {"status": "blocked"})
        r = await _refresh(client, setup, tokens["refresh_token"])
        assert r.json()["error"] == "invalid_grant"
        info = await client.get(f"/{setup.issuer_id}/userinfo",
                                headers={"authorization": f"Bearer {tokens['access_token']}"})
        assert info.status_code == 401

    async def test_removed_membership_leaves_the_claim(self, client: httpx.AsyncClient, setup, admin) -> None:
        tokens = await code_tokens(client, setup)
        await admin.issuer(setup.issuer_id).organization(setup.org_id).members.delete(setup.user_id)
        r = await _refresh(client, setup, tokens["refresh_token"])
        assert r.status_code == 200
        _, claims = await _verify(client, setup, r.json()["id_token"])
        assert claims["organizations"] == []
        info = await client.get(f"/{setup.issuer_id}/userinfo",
                                headers={"authorization": f"Bearer {r.json()['access_token']}"})
        assert info.json()["organizations"] == []


class TestPromptAndMaxAge:
    async def test_prompt_login_asks_again(self, client: httpx.AsyncClient, setup) -> None:
        await code_tokens(client, setup)
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(
            authorize_params(setup, challenge, prompt="login")))
        assert r.headers["location"].startswith(f"/{setup.issuer_id}/login?")
        code, _ = await get_code(client, setup, prompt="login")
        assert code

    async def test_max_age_zero_asks_again(self, client: httpx.AsyncClient, setup) -> None:
        await code_tokens(client, setup)
        time.sleep(1.1)
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(
            authorize_params(setup, challenge, max_age="0")))
        assert r.headers["location"].startswith(f"/{setup.issuer_id}/login?")


class TestTokenEndpointErrors:
    async def test_client_credentials_errors(self, client: httpx.AsyncClient, setup) -> None:
        url = f"/{setup.issuer_id}/token"
        r = await client.post(url, data={"grant_type": "client_credentials", "scope": "admin:all"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        assert r.json()["error"] == "invalid_scope"
        r = await client.post(url, data={"grant_type": "password"}, auth=(setup.m2m_id, setup.m2m_secret))
        assert r.json()["error"] == "unsupported_grant_type"
        r = await client.post(url, data={"grant_type": "client_credentials", "client_id": setup.public_id})
        assert r.json()["error"] == "unauthorized_client"
        r = await client.post(url, data={"grant_type": "client_credentials"},
                              auth=(setup.web_id, setup.web_secret))
        assert r.json()["error"] == "unauthorized_client"
        r = await client.post(url, json={"grant_type": "client_credentials"})
        assert r.json()["error"] == "invalid_request"
        r = await client.post(url, data={"grant_type": "client_credentials", "client_id": setup.m2m_id,
                                         "client_secret": setup.m2m_secret},
                              auth=(setup.m2m_id, setup.m2m_secret))
        assert r.json()["error"] == "invalid_request"  # two authentication methods at once

    async def test_client_credentials_token_at_me_and_introspection(self, client: httpx.AsyncClient,
                                                                    setup) -> None:
        r = await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        token = r.json()["access_token"]
        me = await client.get("/v1/me", headers={"authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["data"]["issuer_id"] == setup.issuer_id
        info = await client.post(f"/{setup.issuer_id}/introspect", data={"token": token},
                                 auth=(setup.m2m_id, setup.m2m_secret))
        assert info.json()["active"] is True
        assert info.json()["sub"] == setup.m2m_id
        await client.post(f"/{setup.issuer_id}/revoke", data={"token": token},
                          auth=(setup.m2m_id, setup.m2m_secret))
        info = await client.post(f"/{setup.issuer_id}/introspect", data={"token": token},
                                 auth=(setup.m2m_id, setup.m2m_secret))
        assert info.json()["active"] is False

    async def test_revoke_answers_200_for_unknown_tokens(self, client: httpx.AsyncClient, setup) -> None:
        r = await client.post(f"/{setup.issuer_id}/revoke", data={"token": "nope"},
                              auth=(setup.web_id, setup.web_secret))
        assert r.status_code == 200

    async def test_deleted_client_cannot_authenticate(self, client: httpx.AsyncClient, setup, admin) -> None:
        r = await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        token = r.json()["access_token"]
        await admin.issuer(setup.issuer_id).clients.delete(setup.m2m_id)
        r = await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        assert r.status_code == 401
        me = await client.get("/v1/me", headers={"authorization": f"Bearer {token}"})
        assert me.status_code == 401

    async def test_rotated_secret_replaces_the_old_one(self, client: httpx.AsyncClient, setup, admin) -> None:
        url = f"/{setup.issuer_id}/token"
        ok = await client.post(url, data={"grant_type": "client_credentials"},
                               auth=(setup.m2m_id, setup.m2m_secret))
        assert ok.status_code == 200
        rotated = await admin.issuer(setup.issuer_id).clients.rotate_secret(setup.m2m_id)
        old = await client.post(url, data={"grant_type": "client_credentials"},
                                auth=(setup.m2m_id, setup.m2m_secret))
        assert old.status_code == 401
        new = await client.post(url, data={"grant_type": "client_credentials"},
                                auth=(setup.m2m_id, rotated.secret))
        assert new.status_code == 200


class TestMachineTokenEvent:
    async def test_each_client_credentials_token_is_in_the_trail(self, client: httpx.AsyncClient, setup,
                                                                  admin: AuthPIAdmin) -> None:
        import asyncio

        jtis = []
        for _ in range(3):
            r = await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                                  auth=(setup.m2m_id, setup.m2m_secret))
            _, claims = await _verify(client, setup, r.json()["access_token"])
            jtis.append(claims["jti"])
        events: list = []
        for _ in range(40):  # metered: written by the batcher within about a second
            events = (await admin.events.list(event_types="machine.token.issued")).data
            if len(events) == 3:
                break
            await asyncio.sleep(0.1)
        assert sorted(e.data["jti"] for e in events) == sorted(jtis)
        assert {e.subject["id"] for e in events} == {setup.m2m_id}
        assert events[0].source.endswith(f"/issuers/{setup.issuer_id}")
        filtered = await admin.events.list(event_types="machine.token.issued", client_id=setup.m2m_id)
        assert len(filtered.data) == 3
