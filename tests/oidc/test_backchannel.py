"""OIDC Back-Channel Logout 1.0: ending a session (an admin's revoke, the hosted logout) POSTs a
signed logout_token to each client's settings.openid.backchannel_logout_uri through the outbox."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from joserfc import jwt
from joserfc.jwk import KeySet

from app.config import Settings
from app.oidc.backchannel import EVENT, deliver
from app.outbox.registry import DeliveryContext, PermanentFailure
from tests.conftest import AccountCredentials
from tests.oidc.helpers import LOGOUT_REDIRECT, OidcSetup, code_tokens, make_setup, set_web_openid


class Receiver:
    """A relying party's back-channel endpoint on 127.0.0.1 (allowed by the tests' settings)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        received = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                received.extend(parse_qs(body).get("logout_token", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait(self, count: int) -> list[str]:
        for _ in range(150):
            if len(self.tokens) >= count:
                break
            await asyncio.sleep(0.1)
        return list(self.tokens)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
async def setup(admin: AuthPIAdmin, receiver: Receiver) -> OidcSetup:
    s = await make_setup(admin)
    await set_web_openid(admin, s, backchannel_logout_uri=receiver.url)
    return s


async def _verified(client: httpx.AsyncClient, s: OidcSetup, token: str) -> tuple[dict, dict]:
    keys = KeySet.import_key_set((await client.get(f"/{s.issuer_id}/jwks.json")).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    return dict(decoded.header), dict(decoded.claims)


class TestBackchannelLogout:
    async def test_admin_revoke_notifies_the_client(
        self,
        client: httpx.AsyncClient,
        setup: OidcSetup,
        receiver: Receiver,
        account: AccountCredentials,
        pg: asyncpg.Pool,
    ) -> None:
        tokens = await code_tokens(client, setup)
        _, id_claims = await _verified(client, setup, tokens["id_token"])
        sid = id_claims["sid"]
        r = await client.post(
            f"/v1/accounts/{account.account_id}/issuers/{setup.issuer_id}/sessions/{sid}/revoke",
            auth=account.basic,
        )
        assert r.status_code == 200, r.text
        (token,) = await receiver.wait(1)
        header, claims = await _verified(client, setup, token)
        assert header["typ"] == "logout+jwt"
        assert claims["iss"] == f"http://testserver/{setup.issuer_id}"
        assert (claims["aud"], claims["sub"], claims["sid"]) == (setup.web_id, setup.user_id, sid)
        assert claims["events"] == {EVENT: {}}
        assert "nonce" not in claims
        assert claims["jti"]
        for _ in range(50):
            status = await pg.fetchval("SELECT status FROM outbox WHERE ref_id = $1", sid)
            if status == "sent":
                break
            await asyncio.sleep(0.1)
        assert status == "sent"

    async def test_hosted_logout_notifies_the_client(
        self, client: httpx.AsyncClient, setup: OidcSetup, receiver: Receiver
    ) -> None:
        tokens = await code_tokens(client, setup)
        r = await client.get(
            f"/{setup.issuer_id}/logout",
            params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGOUT_REDIRECT},
        )
        assert r.status_code in (200, 302), r.text
        (token,) = await receiver.wait(1)
        _, claims = await _verified(client, setup, token)
        assert claims["sub"] == setup.user_id

    async def test_a_client_without_a_uri_gets_nothing(
        self, client: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool
    ) -> None:
        s = await make_setup(admin)
        tokens = await code_tokens(client, s)
        _, id_claims = await _verified(client, s, tokens["id_token"])
        r = await client.post(
            f"/v1/accounts/{account.account_id}/issuers/{s.issuer_id}/sessions/{id_claims['sid']}/revoke",
            auth=account.basic,
        )
        assert r.status_code == 200
        assert await pg.fetchval("SELECT count(*) FROM outbox WHERE ref_id = $1", id_claims["sid"]) == 0


class TestDeliveryRules:
    async def test_private_addresses_are_refused_for_good(self) -> None:
        ctx = DeliveryContext(
            settings=Settings(secret_key="x" * 40, webhooks_allow_private=False), server_key="x" * 40
        )
        for uri in ("http://127.0.0.1:9/bc", "http://10.0.0.7/bc", "http://localhost/bc"):
            with pytest.raises(PermanentFailure):
                await deliver(ctx, None, {"uri": uri, "logout_token": "t"})  # type: ignore[arg-type]
