"""A deliberately misbehaving upstream provider for the refusal tests: OIDC discovery, JWKS, an
authorization endpoint that answers at once, a token endpoint that checks PKCE and signs whatever
ID token the test asks for, and GitHub's user and emails API. Served over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.fixtures.server import LiveServer, free_port


class Fake:
    def __init__(self) -> None:
        self.url = ""
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.claims: dict[str, Any] = {}  # overrides of the ID token's claims
        self.sign_with_other_key = False
        self.authorize_error: str | None = None
        self.forge_state = False
        self.requests: list[dict[str, str]] = []  # authorization requests seen
        self.pkce_ok: list[bool] = []
        self.github_emails: list[dict[str, Any]] = [{"email": "octo@cat.example", "primary": True,
                                                     "verified": True}]

    def id_token(self, client_id: str, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": client_id, "sub": "fake-subject-1", "exp": now + 300, "iat": now,
                  "nonce": nonce, "email": "fake@upstream.example", "email_verified": True, **self.claims}
        key = self.other_key if self.sign_with_other_key else self.key
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def build(fake: Fake) -> FastAPI:
    app = FastAPI()
    app.state.settings = SimpleNamespace(header_timeout_seconds=5.0, body_timeout_seconds=30.0)
    codes: dict[str, dict[str, str]] = {}

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, str]:
        return {"issuer": fake.url, "authorization_endpoint": f"{fake.url}/authorize",
                "token_endpoint": f"{fake.url}/token", "jwks_uri": f"{fake.url}/jwks"}

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        return {"keys": [fake.key.as_dict(private=False)]}

    @app.get("/authorize")
    async def authorize(request: Request) -> RedirectResponse:
        q = dict(request.query_params)
        fake.requests.append(q)
        if fake.authorize_error:
            return RedirectResponse(q["redirect_uri"] + "?" + urlencode(
                {"error": fake.authorize_error, "error_description": "The user said no",
                 "state": q["state"]}), status_code=302)
        code = f"code-{len(fake.requests)}"
        codes[code] = q
        state = "forged-state" if fake.forge_state else q["state"]
        return RedirectResponse(q["redirect_uri"] + "?" + urlencode({"code": code, "state": state}),
                                status_code=302)

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = dict(await request.form())
        asked = codes.pop(str(form.get("code")), None)
        if asked is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier") or "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        fake.pkce_ok.append(challenge == asked.get("code_challenge")
                            and asked.get("code_challenge_method") == "S256")
        body: dict[str, Any] = {"access_token": "fake-access", "token_type": "Bearer", "expires_in": 300}
        if "openid" in asked.get("scope", ""):
            body["id_token"] = fake.id_token(asked["client_id"], asked.get("nonce", ""))
        return JSONResponse(body)

    @app.get("/gh/user")
    async def gh_user(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != "Bearer fake-access":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse({"id": 583231, "login": "octocat", "name": "The Octocat"})

    @app.get("/gh/user/emails")
    async def gh_emails(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != "Bearer fake-access":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(fake.github_emails)

    return app


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[Fake, LiveServer]]:
    fake = Fake()
    port = free_port()
    server = LiveServer(build(fake), port).start()
    fake.url = server.url
    yield fake, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[Fake, LiveServer]) -> Fake:
    """The fake, reset to an honest upstream for each test."""
    f = fake_server[0]
    f.claims, f.sign_with_other_key, f.authorize_error, f.forge_state = {}, False, None, False
    f.requests.clear()
    f.pkce_ok.clear()
    return f
