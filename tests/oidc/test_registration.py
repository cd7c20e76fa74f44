"""Dynamic client registration (RFC 7591/7592) and RFC 8414 metadata: off by default, "open" or
"token" per issuer; registered clients are third-party authorization-code clients with PKCE, visible
to the admin API; every refusal creates nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ApiError
from fastapi import FastAPI

from tests.conftest import AccountCredentials
from tests.oidc.helpers import make_setup, pkce_pair, sign_in

CALLBACK = "http://127.0.0.1:33418/callback"
META = {"redirect_uris": [CALLBACK], "client_name": "mcp-inspector", "scope": "openid profile",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post"}


async def set_mode(admin: AuthPIAdmin, issuer_id: str, mode: str | None) -> None:
    await admin.issuers.update(issuer_id, {"settings": {
        "access": {"mode": "public"}, "security": {"client_registration": mode}}})


async def client_count(pg: asyncpg.Pool, issuer_id: str) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM clients WHERE issuer_id = $1", issuer_id))


async def registration_token(http: httpx.AsyncClient, account: AccountCredentials, issuer_id: str) -> str:
    r = await http.post(f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/registration-tokens",
                        auth=account.basic)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["issuer_id"] == issuer_id
    return str(data["token"])


@pytest.fixture
async def issuer_id(admin: AuthPIAdmin) -> str:
    issuer = await admin.issuers.create({"name": "mcp-tools", "available_scopes": ["tools:call"]})
    return issuer.id


class TestOffByDefault:
    async def test_refused_and_not_advertised(self, client: httpx.AsyncClient, issuer_id: str,
                                              pg: asyncpg.Pool) -> None:
        r = await client.post(f"/{issuer_id}/register", json=META)
        assert (r.status_code, r.json()["error"]) == (403, "access_denied")
        assert await client_count(pg, issuer_id) == 0
        doc = (await client.get(f"/{issuer_id}/.well-known/openid-configuration")).json()
        assert "registration_endpoint" not in doc

    async def test_other_values_are_422(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                        account: AccountCredentials, issuer_id: str) -> None:
        for value in ("yes", True, "OPEN", {"mode": "open"}):
            with pytest.raises(ApiError) as err:
                await admin.issuers.update(issuer_id, {"settings": {
                    "access": {"mode": "public"}, "security": {"client_registration": value}}})
            assert err.value.status_code == 422
        r = await client.patch(f"/v1/accounts/{account.account_id}/issuers/{issuer_id}", auth=account.basic,
                               json={"settings": {"access": {"mode": "public"},
                                                  "security": {"client_registration": "on"}}})
        assert r.status_code == 422
        assert "client_registration" in r.text
        assert (await admin.issuers.get(issuer_id)).settings.get("security") is None


class TestMetadata:
    async def test_rfc8414_both_addresses_state_the_same_facts(self, client: httpx.AsyncClient,
                                                               admin: AuthPIAdmin, issuer_id: str) -> None:
        await set_mode(admin, issuer_id, "open")
        oidc = (await client.get(f"/{issuer_id}/.well-known/openid-configuration")).json()
        suffix = (await client.get(f"/{issuer_id}/.well-known/oauth-authorization-server"))
        inserted = await client.get(f"/.well-known/oauth-authorization-server/{issuer_id}")
        assert suffix.status_code == inserted.status_code == 200
        assert suffix.json() == inserted.json() == oidc
        assert oidc["issuer"] == f"http://testserver/{issuer_id}"
        assert oidc["registration_endpoint"] == f"http://testserver/{issuer_id}/register"
        assert "urn:ietf:params:oauth:grant-type:token-exchange" in oidc["grant_types_supported"]
        assert oidc["code_challenge_methods_supported"] == ["S256"]
        missing = await client.get("/.well-known/oauth-authorization-server/i_doesnotexist")
        assert missing.status_code == 404


class TestOpenRegistration:
    async def test_register_then_sign_in(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                         account: AccountCredentials, pg: asyncpg.Pool) -> None:
        s = await make_setup(admin)
        await set_mode(admin, s.issuer_id, "open")
        r = await client.post(f"/{s.issuer_id}/register", json=META)
        assert r.status_code == 201, r.text
        body = r.json()
        assert r.headers["cache-control"] == "no-store"
        cid = body["client_id"]
        assert body["client_secret"]
        assert body["registration_access_token"]
        assert body["registration_client_uri"] == f"http://testserver/{s.issuer_id}/register/{cid}"
        assert body["redirect_uris"] == [CALLBACK]
        assert body["grant_types"] == ["authorization_code", "refresh_token"]
        assert body["scope"] == "openid profile"
        assert body["token_endpoint_auth_method"] == "client_secret_post"
        # The admin API sees a third-party client made by dynamic registration.
        listed = {c.id: c for c in (await admin.issuer(s.issuer_id).clients.list()).data}
        assert listed[cid].type == "third_party"
        assert listed[cid].grant_types == ["authorization_code", "refresh_token"]
        # The list answer carries the settings too (the SDK's list item drops them).
        raw = await client.get(f"/v1/accounts/{account.account_id}/issuers/{s.issuer_id}/clients",
                               auth=account.basic)
        settings = {c["id"]: c["settings"] for c in raw.json()["data"]}
        assert settings[cid]["openid"]["registration"] == "dynamic"
        assert "registration" not in settings[s.web_id].get("openid", {})
        got = await admin.issuer(s.issuer_id).clients.get(cid)
        assert got.settings["openid"]["registration"] == "dynamic"
        events = (await admin.events.list(event_types="client.created")).data
        assert any(e.subject == {"type": "client", "id": cid} for e in events)
        stored = await pg.fetchval("SELECT access_token_hash FROM client_registrations WHERE client_id = $1",
                                   cid)
        assert body["registration_access_token"] not in stored
        # It signs a user in with the code flow and PKCE.
        verifier, challenge = pkce_pair()
        url = f"http://testserver/{s.issuer_id}/authorize?" + urlencode({
            "client_id": cid, "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid",
            "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256"})
        done = await sign_in(client, url, s.username)
        assert done.status_code == 302, done.text
        code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
        tokens = await client.post(f"/{s.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier, "client_id": cid, "client_secret": body["client_secret"]})
        assert tokens.status_code == 200, tokens.text
        # prompt=none is refused (a third party, and no consent page exists yet), even signed in.
        _, challenge = pkce_pair()
        silent = await client.get(f"/{s.issuer_id}/authorize", params={
            "client_id": cid, "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid",
            "state": "s2", "prompt": "none", "code_challenge": challenge, "code_challenge_method": "S256"})
        assert silent.status_code == 302
        assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["consent_required"]
        # Without PKCE there is no code either.
        bare = await client.get(f"/{s.issuer_id}/authorize", params={
            "client_id": cid, "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid"})
        assert parse_qs(urlsplit(bare.headers["location"]).query)["error"] == ["invalid_request"]

    async def test_public_client(self, client: httpx.AsyncClient, admin: AuthPIAdmin, issuer_id: str) -> None:
        await set_mode(admin, issuer_id, "open")
        r = await client.post(f"/{issuer_id}/register", json={
            "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none",
            "application_type": "native"})
        assert r.status_code == 201, r.text
        assert "client_secret" not in r.json()
        assert r.json()["scope"] == "openid"
        got = await admin.issuer(issuer_id).clients.get(r.json()["client_id"])
        assert got.confidential is False

    @pytest.mark.parametrize(("meta", "error"), [
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({}, "invalid_redirect_uri"),
        ({"redirect_uris": [CALLBACK], "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"redirect_uris": [CALLBACK], "grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"redirect_uris": [CALLBACK], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [CALLBACK], "scope": "openid admin:all"}, "invalid_client_metadata"),
        ({"redirect_uris": [CALLBACK], "grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt"},
         "invalid_client_metadata"),
    ])
    async def test_bad_metadata_creates_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                issuer_id: str, pg: asyncpg.Pool, meta: dict,
                                                error: str) -> None:
        await set_mode(admin, issuer_id, "open")
        r = await client.post(f"/{issuer_id}/register", json=meta)
        assert (r.status_code, r.json()["error"]) == (400, error), r.text
        assert await client_count(pg, issuer_id) == 0

    async def test_issuer_scopes_are_allowed(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                             issuer_id: str) -> None:
        await set_mode(admin, issuer_id, "open")
        r = await client.post(f"/{issuer_id}/register", json={"redirect_uris": [CALLBACK],
                                                              "scope": "openid tools:call"})
        assert r.status_code == 201, r.text
        assert r.json()["scope"] == "openid tools:call"

    async def test_admin_cannot_mark_a_client_dynamic(self, admin: AuthPIAdmin, issuer_id: str) -> None:
        with pytest.raises(ApiError) as err:
            await admin.issuer(issuer_id).clients.create({
                "name": "fake", "settings": {"openid": {"grant_types": ["client_credentials"],
                                                        "registration": "dynamic"}}})
        assert err.value.status_code == 422

    async def test_throttled_per_address(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                         issuer_id: str, app: FastAPI, pg: asyncpg.Pool) -> None:
        await set_mode(admin, issuer_id, "open")
        settings = app.state.settings
        before = settings.registration_rate_limit
        settings.registration_rate_limit = 2
        try:
            for _ in range(2):
                assert (await client.post(f"/{issuer_id}/register", json=META)).status_code == 201
            r = await client.post(f"/{issuer_id}/register", json=META)
            assert (r.status_code, r.json()["error"]) == (429, "temporarily_unavailable")
            assert int(r.headers["retry-after"]) > 0
            assert await client_count(pg, issuer_id) == 2
        finally:
            settings.registration_rate_limit = before


class TestTokenRegistration:
    async def test_initial_access_token_required_and_single_use(
            self, client: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials,
            issuer_id: str, pg: asyncpg.Pool) -> None:
        await set_mode(admin, issuer_id, "token")
        r = await client.post(f"/{issuer_id}/register", json=META)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
        r = await client.post(f"/{issuer_id}/register", json=META,
                              headers={"Authorization": "Bearer rgi_nope"})
        assert (r.status_code, r.json()["error"]) == (401, "invalid_token")
        assert await client_count(pg, issuer_id) == 0
        token = await registration_token(client, account, issuer_id)
        stored = await pg.fetchval("SELECT token_hash FROM registration_tokens WHERE issuer_id = $1",
                                   issuer_id)
        assert token not in stored
        # Bad metadata does not spend the token.
        bad = await client.post(f"/{issuer_id}/register", json={"redirect_uris": ["nope"]},
                                headers={"Authorization": f"Bearer {token}"})
        assert bad.status_code == 400
        ok = await client.post(f"/{issuer_id}/register", json=META,
                               headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 201, ok.text
        again = await client.post(f"/{issuer_id}/register", json=META,
                                  headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401
        assert await client_count(pg, issuer_id) == 1

    async def test_token_of_another_issuer_or_tenant(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                     account: AccountCredentials, issuer_id: str,
                                                     other_admin: AuthPIAdmin, pg: asyncpg.Pool) -> None:
        await set_mode(admin, issuer_id, "token")
        other = await admin.issuers.create({"name": "other"})
        token = await registration_token(client, account, other.id)
        r = await client.post(f"/{issuer_id}/register", json=META,
                              headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        # Another tenant's key cannot mint tokens for this issuer.
        foreign = await other_admin.issuers.create({"name": "foreign"})
        r = await client.post(f"/v1/accounts/{account.account_id}/issuers/{foreign.id}/registration-tokens",
                              auth=account.basic)
        assert r.status_code == 404
        assert await client_count(pg, issuer_id) == 0


class TestManagement:
    async def test_read_update_delete(self, client: httpx.AsyncClient, admin: AuthPIAdmin, issuer_id: str,
                                      pg: asyncpg.Pool) -> None:
        await set_mode(admin, issuer_id, "open")
        body = (await client.post(f"/{issuer_id}/register", json=META)).json()
        uri = f"/{issuer_id}/register/{body['client_id']}"
        auth = {"Authorization": f"Bearer {body['registration_access_token']}"}
        read = await client.get(uri, headers=auth)
        assert read.status_code == 200
        assert read.json()["client_id"] == body["client_id"]
        assert "client_secret" not in read.json()
        assert (await client.get(uri, headers={"Authorization": "Bearer rat_wrong"})).status_code == 401
        assert (await client.get(uri)).status_code == 401
        new_uri = "http://127.0.0.1:40000/cb"
        upd = await client.put(uri, headers=auth, json={**META, "client_id": body["client_id"],
                                                        "redirect_uris": [new_uri]})
        assert upd.status_code == 200, upd.text
        assert upd.json()["redirect_uris"] == [new_uri]
        got = await admin.issuer(issuer_id).clients.get(body["client_id"])
        assert got.settings["openid"]["redirect_uris"] == [new_uri]
        assert got.settings["openid"]["registration"] == "dynamic"
        bad = await client.put(uri, headers=auth, json={**META, "redirect_uris": ["javascript:x"]})
        assert bad.status_code == 400
        got = await admin.issuer(issuer_id).clients.get(body["client_id"])
        assert got.settings["openid"]["redirect_uris"] == [new_uri]
        gone = await client.delete(uri, headers=auth)
        assert gone.status_code == 204
        assert (await client.get(uri, headers=auth)).status_code == 401
        status = await pg.fetchval("SELECT status FROM clients WHERE id = $1", body["client_id"])
        assert status == "deleted"

    async def test_token_does_not_reach_other_clients(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                      issuer_id: str) -> None:
        await set_mode(admin, issuer_id, "open")
        a = (await client.post(f"/{issuer_id}/register", json=META)).json()
        b = (await client.post(f"/{issuer_id}/register", json=META)).json()
        r = await client.get(f"/{issuer_id}/register/{b['client_id']}",
                             headers={"Authorization": f"Bearer {a['registration_access_token']}"})
        assert r.status_code == 401
        r = await client.delete(f"/{issuer_id}/register/{b['client_id']}",
                                headers={"Authorization": f"Bearer {a['registration_access_token']}"})
        assert r.status_code == 401
        assert (await admin.issuer(issuer_id).clients.get(b["client_id"])).status == "active"
