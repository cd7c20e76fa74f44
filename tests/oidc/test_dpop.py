"""DPoP (RFC 9449) at /token, /userinfo and GET /v1/me: bound tokens carry `cnf.jkt` and are
`token_type: DPoP`; proofs are checked (htm, htu, iat, jti replay, ath, nonce, key); a public
client's refresh tokens are bound; a client may require DPoP."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from app.oidc.dpop import ALGORITHMS, access_token_hash
from tests.oidc.helpers import REDIRECT, OidcSetup, get_code, make_setup
from tests.oidc.test_agent_tokens import make_agent

BASE = "http://testserver"
PUBLIC_REDIRECT = "http://127.0.0.1/callback"


def proof(key: Any, htm: str, htu: str, *, alg: str = "ES256", token: str | None = None,
          **claims: Any) -> str:
    body: dict[str, Any] = {"htm": htm, "htu": htu, "iat": int(time.time()),
                            "jti": secrets.token_urlsafe(16)}
    if token is not None:
        body["ath"] = access_token_hash(token)
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}, body, key,
                      algorithms=[alg])


def new_key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


async def _claims(client: httpx.AsyncClient, issuer_id: str, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set((await client.get(f"/{issuer_id}/jwks.json")).json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


async def _m2m_token(client: httpx.AsyncClient, s: OidcSetup, key: Any, **kw: Any) -> httpx.Response:
    url = f"{BASE}/{s.issuer_id}/token"
    return await client.post(url, data={"grant_type": "client_credentials"},
                             auth=(s.m2m_id, s.m2m_secret), headers={"DPoP": proof(key, "POST", url, **kw)})


async def _me(client: httpx.AsyncClient, token: str, key: Any | None, *, scheme: str = "DPoP",
              **kw: Any) -> httpx.Response:
    headers = {"authorization": f"{scheme} {token}"}
    if key is not None:
        headers["DPoP"] = proof(key, "GET", f"{BASE}/v1/me", token=token, **kw)
    return await client.get("/v1/me", headers=headers)


class TestBoundClientCredentials:
    async def test_token_is_bound_to_the_proofs_key(self, client: httpx.AsyncClient,
                                                    setup: OidcSetup) -> None:
        key = new_key()
        r = await _m2m_token(client, setup, key)
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        claims = await _claims(client, setup.issuer_id, r.json()["access_token"])
        assert claims["cnf"] == {"jkt": key.thumbprint()}
        # Introspection tells a resource server which key the token is bound to (RFC 9449 §6.2).
        info = await client.post(f"/{setup.issuer_id}/introspect", data={"token": r.json()["access_token"]},
                                 auth=(setup.m2m_id, setup.m2m_secret))
        assert (info.json()["active"], info.json()["cnf"]) == (True, {"jkt": key.thumbprint()})

    async def test_without_a_proof_the_token_is_bearer(self, client: httpx.AsyncClient,
                                                       setup: OidcSetup) -> None:
        r = await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        assert r.json()["token_type"] == "Bearer"
        assert "cnf" not in await _claims(client, setup.issuer_id, r.json()["access_token"])

    async def test_me_needs_the_dpop_scheme_and_a_proof_of_the_same_key(
            self, client: httpx.AsyncClient, setup: OidcSetup) -> None:
        key = new_key()
        token = (await _m2m_token(client, setup, key)).json()["access_token"]
        ok = await _me(client, token, key)
        assert ok.status_code == 200, ok.text
        assert ok.json()["data"]["issuer_id"] == setup.issuer_id
        # Bearer with a bound token, DPoP without a proof, a proof of another key, no ath.
        for r in (await _me(client, token, None, scheme="Bearer"), await _me(client, token, None),
                  await _me(client, token, new_key()), await _me(client, token, key, ath=None)):
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"].startswith("DPoP ")

    async def test_a_replayed_proof_is_refused(self, client: httpx.AsyncClient, setup: OidcSetup) -> None:
        key = new_key()
        url = f"{BASE}/{setup.issuer_id}/token"
        once = proof(key, "POST", url)
        first = await client.post(url, data={"grant_type": "client_credentials"},
                                  auth=(setup.m2m_id, setup.m2m_secret), headers={"DPoP": once})
        assert first.status_code == 200
        again = await client.post(url, data={"grant_type": "client_credentials"},
                                  auth=(setup.m2m_id, setup.m2m_secret), headers={"DPoP": once})
        assert (again.status_code, again.json()["error"]) == (400, "invalid_dpop_proof")
        token = first.json()["access_token"]
        me_proof = proof(key, "GET", f"{BASE}/v1/me", token=token)
        headers = {"authorization": f"DPoP {token}", "DPoP": me_proof}
        assert (await client.get("/v1/me", headers=headers)).status_code == 200
        assert (await client.get("/v1/me", headers=headers)).status_code == 401

    @pytest.mark.parametrize("bad", ["htm", "htu", "old", "future", "private", "signature", "typ", "none"])
    async def test_bad_proofs_at_the_token_endpoint(self, client: httpx.AsyncClient, setup: OidcSetup,
                                                    pg: asyncpg.Pool, bad: str) -> None:
        key = new_key()
        url = f"{BASE}/{setup.issuer_id}/token"
        value = {
            "htm": lambda: proof(key, "GET", url),
            "htu": lambda: proof(key, "POST", f"{BASE}/{setup.issuer_id}/userinfo"),
            "old": lambda: proof(key, "POST", url, iat=int(time.time()) - 600),
            "future": lambda: proof(key, "POST", url, iat=int(time.time()) + 600),
            "private": lambda: jwt.encode({"alg": "ES256", "typ": "dpop+jwt",
                                           "jwk": key.as_dict(private=True)},
                                          {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": "x1"},
                                          key),
            "signature": lambda: proof(key, "POST", url)[:-4] + "AAAA",
            "typ": lambda: jwt.encode({"alg": "ES256", "typ": "JWT", "jwk": key.as_dict(private=False)},
                                      {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": "x2"},
                                      key),
            "none": lambda: "eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.eyJodG0iOiJQT1NUIn0.",
        }[bad]()
        before = await pg.fetchval("SELECT count(*) FROM events WHERE type = 'machine.token.issued' "
                                   "AND client_id = $1", setup.m2m_id)
        r = await client.post(url, data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret), headers={"DPoP": value})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_dpop_proof"), r.text
        time.sleep(0.2)
        assert await pg.fetchval("SELECT count(*) FROM events WHERE type = 'machine.token.issued' "
                                 "AND client_id = $1", setup.m2m_id) == before

    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_every_advertised_algorithm(self, client: httpx.AsyncClient, setup: OidcSetup,
                                              alg: str) -> None:
        key: Any = {"ES256": lambda: ECKey.generate_key("P-256"),
                    "ES384": lambda: ECKey.generate_key("P-384"),
                    "ES512": lambda: ECKey.generate_key("P-521"), "PS256": lambda: RSAKey.generate_key(2048),
                    "RS256": lambda: RSAKey.generate_key(2048),
                    "EdDSA": lambda: OKPKey.generate_key("Ed25519")}[alg]()
        r = await _m2m_token(client, setup, key, alg=alg)
        assert r.status_code == 200, r.text
        assert (await _claims(client, setup.issuer_id, r.json()["access_token"]))["cnf"]["jkt"] == \
            key.thumbprint()


class TestClientRequiresDpop:
    async def test_proof_required(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                  setup: OidcSetup) -> None:
        await admin.issuer(setup.issuer_id).clients.update(setup.m2m_id, {"settings": {
            "scopes": ["invoices:read", "invoices:write"],
            "openid": {"application_type": "service", "grant_types": ["client_credentials"],
                       "dpop_bound_access_tokens": True}}})
        r = await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        assert (r.status_code, r.json()["error"]) == (400, "invalid_dpop_proof")
        got = await admin.issuer(setup.issuer_id).clients.get(setup.m2m_id)
        assert got.settings["openid"]["dpop_bound_access_tokens"] is True
        assert (await _m2m_token(client, setup, new_key())).json()["token_type"] == "DPoP"


class TestAgentsAndUserinfo:
    async def test_agent_token_bound_and_userinfo(self, client: httpx.AsyncClient,
                                                  admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        key = new_key()
        url = f"{BASE}/{s.issuer_id}/token"
        r = await client.post(url, data={"grant_type": "client_credentials"}, auth=(s.agent_id, s.secret),
                              headers={"DPoP": proof(key, "POST", url)})
        assert r.json()["token_type"] == "DPoP"
        token = r.json()["access_token"]
        info_url = f"{BASE}/{s.issuer_id}/userinfo"
        ok = await client.get(info_url, headers={"authorization": f"DPoP {token}",
                                                 "DPoP": proof(key, "GET", info_url, token=token)})
        assert ok.status_code == 200, ok.text
        assert ok.json()["sub"] == s.agent_id
        foreign = await client.get(info_url, headers={"authorization": f"DPoP {token}",
                                                      "DPoP": proof(new_key(), "GET", info_url, token=token)})
        assert (foreign.status_code, foreign.json()["error"]) == (401, "invalid_dpop_proof")
        bearer = await client.get(info_url, headers={"authorization": f"Bearer {token}"})
        assert bearer.status_code == 401


class TestPublicClientRefreshBinding:
    async def _tokens(self, client: httpx.AsyncClient, setup: OidcSetup, key: Any) -> dict[str, Any]:
        code, verifier = await get_code(client, setup, client_id=setup.public_id,
                                        redirect_uri=PUBLIC_REDIRECT, scope="openid profile", nonce=None)
        url = f"{BASE}/{setup.issuer_id}/token"
        r = await client.post(url, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": PUBLIC_REDIRECT,
            "code_verifier": verifier, "client_id": setup.public_id},
            headers={"DPoP": proof(key, "POST", url)})
        assert r.status_code == 200, r.text
        return r.json()

    async def _refresh(self, client: httpx.AsyncClient, setup: OidcSetup, rt: str, key: Any | None
                       ) -> httpx.Response:
        url = f"{BASE}/{setup.issuer_id}/token"
        headers = {"DPoP": proof(key, "POST", url)} if key is not None else {}
        return await client.post(url, data={"grant_type": "refresh_token", "refresh_token": rt,
                                            "client_id": setup.public_id}, headers=headers)

    async def test_refresh_token_needs_the_same_key(self, client: httpx.AsyncClient, setup: OidcSetup,
                                                    pg: asyncpg.Pool) -> None:
        key = new_key()
        body = await self._tokens(client, setup, key)
        assert body["token_type"] == "DPoP"
        claims = await _claims(client, setup.issuer_id, body["access_token"])
        assert claims["cnf"]["jkt"] == key.thumbprint()
        assert await pg.fetchval("SELECT dpop_jkt FROM oidc_grants WHERE client_id = $1",
                                 setup.public_id) == key.thumbprint()
        rt = body["refresh_token"]
        for other in (None, new_key()):
            r = await self._refresh(client, setup, rt, other)
            assert (r.status_code, r.json()["error"]) == (400, "invalid_dpop_proof"), r.text
        # Nothing changed: the token is still active and rotates with its own key.
        assert await pg.fetchval("SELECT count(*) FROM refresh_tokens t JOIN oidc_grants g ON "
                                 "g.id = t.grant_id WHERE g.client_id = $1 AND t.status = 'active'",
                                 setup.public_id) == 1
        ok = await self._refresh(client, setup, rt, key)
        assert ok.status_code == 200, ok.text
        assert ok.json()["token_type"] == "DPoP"
        again = await self._refresh(client, setup, ok.json()["refresh_token"], key)
        assert again.status_code == 200

    async def test_confidential_client_refresh_is_not_key_bound(self, client: httpx.AsyncClient,
                                                                 setup: OidcSetup, pg: asyncpg.Pool) -> None:
        code, verifier = await get_code(client, setup, scope="openid offline_access")
        url = f"{BASE}/{setup.issuer_id}/token"
        r = await client.post(url, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}, auth=(setup.web_id, setup.web_secret),
            headers={"DPoP": proof(new_key(), "POST", url)})
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        assert await pg.fetchval("SELECT dpop_jkt FROM oidc_grants WHERE client_id = $1",
                                 setup.web_id) is None
        plain = await client.post(url, data={"grant_type": "refresh_token",
                                             "refresh_token": r.json()["refresh_token"]},
                                  auth=(setup.web_id, setup.web_secret))
        assert (plain.status_code, plain.json()["token_type"]) == (200, "Bearer")


class TestNonce:
    async def test_required_nonce(self, app: FastAPI, client: httpx.AsyncClient, setup: OidcSetup) -> None:
        from app.oidc.dpop import checker

        dpop = checker(app)
        dpop.nonce_required = True
        try:
            key = new_key()
            r = await _m2m_token(client, setup, key)
            assert (r.status_code, r.json()["error"]) == (400, "use_dpop_nonce")
            nonce = r.headers["dpop-nonce"]
            bad = await _m2m_token(client, setup, key, nonce="not-a-nonce")
            assert (bad.status_code, bad.json()["error"]) == (400, "use_dpop_nonce")
            ok = await _m2m_token(client, setup, key, nonce=nonce)
            assert ok.status_code == 200, ok.text
            assert ok.headers["dpop-nonce"]
            token = ok.json()["access_token"]
            me = await _me(client, token, key)
            assert me.status_code == 401
            assert 'error="use_dpop_nonce"' in me.headers["www-authenticate"]
            assert (await _me(client, token, key, nonce=me.headers["dpop-nonce"])).status_code == 200
        finally:
            dpop.nonce_required = False


class TestDiscovery:
    async def test_algorithms_are_listed(self, client: httpx.AsyncClient, setup: OidcSetup) -> None:
        doc = (await client.get(f"/{setup.issuer_id}/.well-known/openid-configuration")).json()
        assert doc["dpop_signing_alg_values_supported"] == ALGORITHMS
