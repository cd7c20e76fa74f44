"""Security properties of the OpenID Provider (issue 4's list), in-process over raw HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.oidc.helpers import (
    REDIRECT,
    authorize_params,
    code_tokens,
    get_code,
    make_setup,
    pkce_pair,
    sign_in,
)

BASE = "http://testserver"


@pytest.fixture
async def setup(admin: AuthPIAdmin):
    return await make_setup(admin)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _userinfo(client: httpx.AsyncClient, setup, token: str) -> int:
    r = await client.get(f"{BASE}/{setup.issuer_id}/userinfo", headers={"authorization": f"Bearer {token}"})
    return r.status_code


async def _introspect(client: httpx.AsyncClient, setup, token: str) -> bool:
    r = await client.post(f"{BASE}/{setup.issuer_id}/introspect", data={"token": token},
                          auth=(setup.web_id, setup.web_secret))
    assert r.status_code == 200
    return r.json()["active"]


async def _me(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/v1/me", headers={"authorization": f"Bearer {token}"})).status_code


async def _assert_refused_everywhere(client, setup, token: str) -> None:
    assert await _userinfo(client, setup, token) == 401
    assert await _introspect(client, setup, token) is False
    assert await _me(client, token) == 401


class TestRedirectUriTampering:
    @pytest.mark.parametrize("uri", [
        "http://evil.example/api/auth/callback",
        "http://localhost:3000/api/auth/callback/extra",
        "http://localhost:3000/api/auth/callback?x=1",
        "http://LOCALHOST:3000/api/auth/callback",
        "http://localhost:3000/api/auth/Callback",
        "http://localhost:3000/api/auth/callback/",
        "http://localhost:3000/api/auth/callback#frag",
        "http://localhost:3001/api/auth/callback",
        "http://127.0.0.1/callback",  # another client's URI
        "",
    ])
    async def test_never_redirects(self, client: httpx.AsyncClient, setup, uri: str) -> None:
        _, challenge = pkce_pair()
        params = authorize_params(setup, challenge, redirect_uri=uri)
        url = f"/{setup.issuer_id}/authorize?" + urlencode(params)
        r = await client.get(url)
        assert r.status_code == 400
        assert "location" not in r.headers

    async def test_unknown_client_is_a_page(self, client: httpx.AsyncClient, setup) -> None:
        _, challenge = pkce_pair()
        params = authorize_params(setup, challenge, client_id="c_01jz0000000000000000000000")
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(params))
        assert r.status_code == 400
        assert "location" not in r.headers

    async def test_loopback_any_port_for_native_clients(self, client: httpx.AsyncClient, setup) -> None:
        _, challenge = pkce_pair()
        params = authorize_params(setup, challenge, client_id=setup.public_id,
                                  redirect_uri="http://127.0.0.1:53124/callback", scope="openid")
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(params))
        assert r.status_code == 302
        assert r.headers["location"].startswith(f"/{setup.issuer_id}/login?")
        params["redirect_uri"] = "http://127.0.0.1:53124/callback/x"
        assert (await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(params))).status_code == 400


class TestPkce:
    @pytest.mark.parametrize("extra", [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
    ])
    async def test_missing_or_plain_is_an_error_redirect(self, client: httpx.AsyncClient, setup,
                                                         extra) -> None:
        _, challenge = pkce_pair()
        params = authorize_params(setup, challenge)
        params.update({k: v for k, v in extra.items() if v is not None})
        for k, v in extra.items():
            if v is None:
                params.pop(k, None)
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(params))
        assert r.status_code == 302
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["error"] == ["invalid_request"]
        assert query["state"] == ["st-1"]
        assert query["iss"] == [f"{BASE}/{setup.issuer_id}"]
        assert "code" not in query

    async def test_wrong_verifier_is_refused(self, client: httpx.AsyncClient, setup) -> None:
        code, _ = await get_code(client, setup)
        wrong, _ = pkce_pair()
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": wrong, "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_grant"

    async def test_missing_verifier_is_refused(self, client: httpx.AsyncClient, setup) -> None:
        code, _ = await get_code(client, setup)
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"


class TestCodeReplay:
    async def test_replay_is_refused_and_revokes_what_was_issued(self, client: httpx.AsyncClient,
                                                                 setup, admin: AuthPIAdmin) -> None:
        code, verifier = await get_code(client, setup)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": setup.web_id, "client_secret": setup.web_secret}
        first = await client.post(f"/{setup.issuer_id}/token", data=form)
        assert first.status_code == 200
        tokens = first.json()
        assert await _userinfo(client, setup, tokens["access_token"]) == 200
        again = await client.post(f"/{setup.issuer_id}/token", data=form)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
        await _assert_refused_everywhere(client, setup, tokens["access_token"])
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"
        # The replay and the revocation it caused are in the trail.
        replays = (await admin.events.list(event_types="auth.flow.replay-attempt")).data
        assert [e.data["revoked"] for e in replays] == [True]
        revoked = (await admin.events.list(event_types="session.updated")).data
        assert [e.data["reason"] for e in revoked] == ["code_replay"]

    async def test_code_of_another_client_is_refused(self, client: httpx.AsyncClient, setup) -> None:
        code, verifier = await get_code(client, setup)
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": setup.public_id})
        assert r.json()["error"] == "invalid_grant"


class TestRefreshReuse:
    async def test_reuse_revokes_the_family(self, client: httpx.AsyncClient, setup,
                                            admin: AuthPIAdmin) -> None:
        tokens = await code_tokens(client, setup)
        form = {"grant_type": "refresh_token", "client_id": setup.web_id, "client_secret": setup.web_secret}
        r1 = await client.post(f"/{setup.issuer_id}/token",
                               data={**form, "refresh_token": tokens["refresh_token"]})
        assert r1.status_code == 200
        rotated = r1.json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        reuse = await client.post(f"/{setup.issuer_id}/token",
                                  data={**form, "refresh_token": tokens["refresh_token"]})
        assert reuse.json()["error"] == "invalid_grant"
        after = await client.post(f"/{setup.issuer_id}/token",
                                  data={**form, "refresh_token": rotated["refresh_token"]})
        assert after.json()["error"] == "invalid_grant"
        await _assert_refused_everywhere(client, setup, rotated["access_token"])
        assert (await admin.events.list(event_types="session.compromised")).data


class TestForgedTokens:
    async def _claims(self, client, setup) -> tuple[dict, dict, str]:
        tokens = await code_tokens(client, setup)
        token = tokens["access_token"]
        header, payload = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in token.split(".")[:2])
        return header, payload, token

    async def test_alg_none(self, client, setup) -> None:
        header, payload, _ = await self._claims(client, setup)
        forged = f"{_b64({**header, 'alg': 'none'})}.{_b64(payload)}."
        await _assert_refused_everywhere(client, setup, forged)

    async def test_hs256_with_the_public_key(self, client, setup) -> None:
        header, payload, _ = await self._claims(client, setup)
        jwks = (await client.get(f"/{setup.issuer_id}/jwks.json")).json()["keys"]
        for jwk in jwks:
            public = RSAKey.import_key(jwk).as_pem(private=False) if jwk["kty"] == "RSA" else None
            for secret in filter(None, [public, json.dumps(jwk).encode()]):
                forged_header = _b64({"alg": "HS256", "kid": jwk["kid"], "typ": "at+jwt"})
                signing_input = f"{forged_header}.{_b64(payload)}"
                mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
                forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
                await _assert_refused_everywhere(client, setup, forged)

    async def test_unknown_kid(self, client, setup) -> None:
        _, payload, _ = await self._claims(client, setup)
        key = RSAKey.generate_key(2048)
        forged = jwt.encode({"alg": "RS256", "kid": "sk_unknown", "typ": "at+jwt"}, payload, key)
        await _assert_refused_everywhere(client, setup, forged)

    async def test_tampered_payload(self, client, setup) -> None:
        _, payload, token = await self._claims(client, setup)
        parts = token.split(".")
        forged = f"{parts[0]}.{_b64({**payload, 'sub': 'usr_01jz0000000000000000000000'})}.{parts[2]}"
        await _assert_refused_everywhere(client, setup, forged)

    async def test_expired(self, client, setup, app) -> None:
        from app.oidc.runtime import runtime
        from app.oidc.tokens import sign_access_token

        _, payload, _ = await self._claims(client, setup)
        rt = runtime(app)
        keys = await rt.keys.get(rt.session_factory(), setup.issuer_id)
        expired = sign_access_token(keys, {**payload, "iat": int(time.time()) - 7200,
                                           "exp": int(time.time()) - 3600})
        await _assert_refused_everywhere(client, setup, expired)

    async def test_another_issuers_token(self, client, setup, admin: AuthPIAdmin) -> None:
        other = await make_setup(admin)
        tokens = await code_tokens(httpx.AsyncClient(transport=client._transport, base_url=BASE), other)
        assert await _userinfo(client, other, tokens["access_token"]) == 200
        assert await _userinfo(client, setup, tokens["access_token"]) == 401
        assert await _introspect(client, setup, tokens["access_token"]) is False


class TestCrossIssuer:
    async def test_client_of_one_issuer_is_unknown_at_another(self, client, setup,
                                                              admin: AuthPIAdmin) -> None:
        other = await make_setup(admin)
        r = await client.post(f"/{other.issuer_id}/token", data={"grant_type": "client_credentials"},
                              auth=(setup.m2m_id, setup.m2m_secret))
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_client"
        _, challenge = pkce_pair()
        r = await client.get(f"/{other.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge)))
        assert r.status_code == 400

    async def test_login_cookie_is_scoped_to_its_issuer(self, client, setup, admin: AuthPIAdmin) -> None:
        await code_tokens(client, setup)
        cookies = [c for c in client.cookies.jar if c.name.startswith("authpi_session_")]
        assert [c.path for c in cookies] == [f"/{setup.issuer_id}"]
        other = await make_setup(admin)
        _, challenge = pkce_pair()
        params = authorize_params(other, challenge)
        r = await client.get(f"/{other.issuer_id}/authorize?" + urlencode(params))
        assert r.headers["location"].startswith(f"/{other.issuer_id}/login?")  # not signed in there


class TestHostedLogin:
    async def _login_page(self, client, setup):
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge)))
        return await client.get(r.headers["location"]), r.headers["location"]

    async def test_security_headers_and_cookie_flags(self, client, setup) -> None:
        page, _ = await self._login_page(client, setup)
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["cache-control"] == "no-store"
        cookie = page.headers["set-cookie"]
        assert f"Path=/{setup.issuer_id}" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie

    async def test_unknown_user_and_wrong_password_look_alike(self, client, setup, admin) -> None:
        _, challenge = pkce_pair()
        url = f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge))
        wrong = await sign_in(client, url, setup.username, "not the password")
        unknown = await sign_in(client, url, "nobody@globex.example", "not the password")
        assert wrong.status_code == unknown.status_code == 401
        assert "The username or password is incorrect." in wrong.text
        def normalised(text: str, username: str) -> str:
            # The signed return value carries its own expiry (seconds): not part of the comparison.
            return re.sub(r'name="return" value="[^"]*"', "", text).replace(username, "X")

        assert normalised(wrong.text, setup.username) == normalised(unknown.text, "nobody@globex.example")
        assert len((await admin.events.list(event_types="user.verification.failed")).data) == 2

    async def test_missing_csrf_is_refused(self, client, setup) -> None:
        _, login_url = await self._login_page(client, setup)
        ret = parse_qs(urlsplit(login_url).query)["return"][0]
        r = await client.post(f"/{setup.issuer_id}/login", data={
            "return": ret, "username": setup.username, "password": "x"})
        assert r.status_code == 403

    async def test_failures_are_throttled(self, client, setup, app) -> None:
        limit = app.state.settings.auth_fail_limit
        _, challenge = pkce_pair()
        url = f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge))
        for _ in range(limit):
            assert (await sign_in(client, url, setup.username, "bad")).status_code == 401
        blocked = await sign_in(client, url, setup.username)  # even the right password waits
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1

    async def test_tampered_return_is_refused(self, client, setup) -> None:
        r = await client.get(f"/{setup.issuer_id}/login?return=abc.def")
        assert r.status_code == 400


class TestAuthorizeOptions:
    async def test_prompt_none_without_session(self, client, setup) -> None:
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(
            authorize_params(setup, challenge, prompt="none")))
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["error"] == ["login_required"]

    async def test_prompt_none_with_session_and_org(self, client, setup) -> None:
        await code_tokens(client, setup)
        code, _ = await get_code(client, setup, prompt="none", org=setup.org_id)
        assert code

    async def test_org_the_user_is_not_in(self, client, setup) -> None:
        await code_tokens(client, setup)
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(
            authorize_params(setup, challenge, org="org_01jz0000000000000000000000")))
        assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["access_denied"]

    async def test_scope_not_allowed(self, client, setup) -> None:
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(
            authorize_params(setup, challenge, scope="openid admin:all")))
        assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_scope"]


class TestLogout:
    async def test_unregistered_post_logout_uri_never_redirects(self, client, setup) -> None:
        tokens = await code_tokens(client, setup)
        for uri in ("http://evil.example/", "http://localhost:3000/signed-out/", "http://localhost:3000/signed-out?x=1"):
            r = await client.get(f"/{setup.issuer_id}/logout?" + urlencode(
                {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri}))
            assert r.status_code == 400
            assert "location" not in r.headers

    async def test_logout_without_redirect_ends_the_session(self, client, setup) -> None:
        tokens = await code_tokens(client, setup)
        r = await client.get(f"/{setup.issuer_id}/logout")
        assert r.status_code == 200
        assert "You are signed out." in r.text
        assert await _userinfo(client, setup, tokens["access_token"]) == 401
        _, challenge = pkce_pair()
        query = urlencode(authorize_params(setup, challenge))
        again = await client.get(f"/{setup.issuer_id}/authorize?{query}")
        assert again.headers["location"].startswith(f"/{setup.issuer_id}/login?")

    async def test_forged_id_token_hint_is_refused(self, client, setup) -> None:
        tokens = await code_tokens(client, setup)
        head, payload, sig = tokens["id_token"].split(".")
        forged = f"{head}.{_b64({'sub': 'usr_x', 'aud': setup.web_id, 'iss': 'x'})}.{sig}"
        r = await client.get(f"/{setup.issuer_id}/logout?" + urlencode(
            {"id_token_hint": forged, "post_logout_redirect_uri": "http://localhost:3000/signed-out"}))
        assert r.status_code == 400
