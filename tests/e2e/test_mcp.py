"""The official MCP Python SDK completes its OAuth flow against an authpi issuer.

A small MCP server (the SDK's own `MCPServer`) publishes RFC 9728 metadata naming the issuer and
verifies the issuer's access tokens through its JWKS. The SDK's client discovers the issuer (RFC
8414, path-insertion form), registers itself (RFC 7591), signs the user in through the hosted
login with PKCE, gets the token and calls the tool; without a token the call fails.

Both servers run in-process (ASGI), routed by host, so the test does not depend on threads and
ports: `testserver` is authpi, `mcp.test` the MCP server.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.oidc.helpers import PASSWORD, sign_in

MCP_URL = "http://mcp.test/mcp"
CALLBACK = "http://127.0.0.1:33418/callback"
SCOPE = "tools:call"


class HostRouter(httpx2.AsyncBaseTransport):
    """One HTTP client for both servers: the request's host picks the ASGI app."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.transports = {host: httpx2.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.transports[request.url.host].handle_async_request(request)


class JwksVerifier:
    """What a customer's API does: verify the issuer's ES256 access tokens with its JWKS."""

    def __init__(self, authpi: FastAPI, issuer_url: str) -> None:
        self.authpi = authpi
        self.issuer_url = issuer_url
        self.verified: list[dict[str, Any]] = []

    async def verify_token(self, token: str) -> AccessToken | None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.authpi),
                                     base_url="http://testserver") as http:
            published = await http.get(f"{self.issuer_url}/jwks.json")
        if published.status_code != 200:
            return None
        keys = KeySet.import_key_set(published.json())
        try:
            decoded = jwt.decode(token, keys, algorithms=["ES256"])
        except (JoseError, ValueError):
            return None
        claims = dict(decoded.claims)
        if (decoded.header.get("typ") != "at+jwt" or claims.get("iss") != self.issuer_url
                or int(claims.get("exp", 0)) <= time.time() or claims.get("aud") != MCP_URL):
            return None
        self.verified.append(claims)
        return AccessToken(token=token, client_id=str(claims["client_id"]),
                           scopes=str(claims["scope"]).split(), expires_at=int(claims["exp"]),
                           resource=MCP_URL, subject=str(claims["sub"]))


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def mcp_server(authpi: FastAPI, issuer_url: str) -> tuple[Any, JwksVerifier]:
    verifier = JwksVerifier(authpi, issuer_url)
    server = MCPServer("invoices", token_verifier=verifier, auth=AuthSettings(
        issuer_url=issuer_url, resource_server_url=MCP_URL, required_scopes=[SCOPE],
        validate_token_resource=True))

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    app = server.streamable_http_app(transport_security=TransportSecuritySettings(
        enable_dns_rebinding_protection=False))
    return app, verifier


@pytest.fixture
async def issuer(admin: AuthPIAdmin) -> tuple[str, str]:
    issuer = await admin.issuers.create({"name": "mcp-tools", "available_scopes": [SCOPE],
                                         "settings": {"access": {"mode": "public"},
                                                      "security": {"client_registration": "open"}}})
    await admin.issuer(issuer.id).users.create({"username_type": "email", "username": "ada@globex.example",
                                                "password": PASSWORD})
    return issuer.id, "ada@globex.example"


async def test_mcp_client_oauth_flow(app: FastAPI, admin: AuthPIAdmin, issuer: tuple[str, str]) -> None:
    issuer_id, username = issuer
    issuer_url = f"http://testserver/{issuer_id}"
    mcp_app, verifier = mcp_server(app, issuer_url)
    redirect: dict[str, AuthorizationCodeResult] = {}

    async def redirect_handler(url: str) -> None:
        # The user's browser: the hosted login, then the redirect back with the code.
        assert url.startswith(f"{issuer_url}/authorize?")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as browser:
            final = await sign_in(browser, url, username)
        assert final.status_code == 302, final.text
        query = parse_qs(urlsplit(final.headers["location"]).query)
        assert "code" in query, final.headers["location"]
        redirect["result"] = AuthorizationCodeResult(code=query["code"][0], state=query["state"][0],
                                                     iss=query["iss"][0])

    async def callback_handler() -> AuthorizationCodeResult:
        return redirect["result"]

    storage = MemoryStorage()
    oauth = OAuthClientProvider(
        server_url=MCP_URL, storage=storage, redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata=OAuthClientMetadata(client_name="mcp-e2e", redirect_uris=[CALLBACK],
                                            grant_types=["authorization_code", "refresh_token"],
                                            response_types=["code"], scope=SCOPE))
    router = HostRouter({"testserver": app, "mcp.test": mcp_app})
    async with mcp_app.router.lifespan_context(mcp_app):
        # Without a token: the tool call fails (401 from the resource server).
        async with httpx2.AsyncClient(transport=router) as anonymous:
            denied = await anonymous.post(MCP_URL, json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                         "params": {}},
                                          headers={"Accept": "application/json, text/event-stream"})
            assert denied.status_code == 401
            assert "resource_metadata=" in denied.headers["www-authenticate"]
            prm = (await anonymous.get("http://mcp.test/.well-known/oauth-protected-resource/mcp")).json()
            assert prm["authorization_servers"] == [issuer_url]
        with pytest.raises(Exception):  # noqa: B017,PT011 - whatever the SDK raises for a 401
            async with httpx2.AsyncClient(transport=router) as anonymous, \
                    Client(streamable_http_client(MCP_URL, http_client=anonymous)) as bare:
                await bare.call_tool("add", {"a": 1, "b": 2})
        # With the SDK's OAuth: discovery, registration, PKCE, token, then the tool call.
        async with httpx2.AsyncClient(transport=router, auth=oauth) as http, \
                Client(streamable_http_client(MCP_URL, http_client=http)) as client:
            result = await client.call_tool("add", {"a": 20, "b": 22})
            assert not result.is_error
            assert "42" in str(result.content)
    assert storage.client_info is not None
    registered = await admin.issuer(issuer_id).clients.get(storage.client_info.client_id)
    assert registered.type == "third_party"
    assert registered.settings["openid"]["registration"] == "dynamic"
    assert storage.tokens is not None
    claims = verifier.verified[-1]
    assert claims["client_id"] == storage.client_info.client_id
    assert claims["aud"] == MCP_URL
    # The SDK adds offline_access (its refresh token) to what the resource asks for.
    assert SCOPE in claims["scope"].split()
    # A token of another issuer is refused by the resource server.
    foreign = JwksVerifier(app, "http://testserver/i_other")
    assert await foreign.verify_token(storage.tokens.access_token) is None
