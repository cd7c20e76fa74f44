"""Delivery signatures, checked by the standardwebhooks package's own Webhook.verify (the
specification's reference library), before and during a secret rotation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.ids import new_id, now_ms
from app.events.service import build_event
from app.models.webhook import Webhook
from app.webhooks import signing
from app.webhooks.delivery import Sender, attempt, seal_secret

SERVER_KEY = "signing-test-server-key-0123456789abcdef"


@pytest.fixture
async def capture() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A raw receiver that keeps each request's headers and body exactly as sent."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        pairs = (line.partition(":") for line in lines if line)
        headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
        body = await reader.readexactly(int(headers["content-length"]))
        got.append((headers, body))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook", got
    server.close()


def _webhook(url: str, secret: str, previous: str | None = None,
             previous_until: int | None = None) -> Webhook:
    wid = new_id("wh")
    return Webhook(id=wid, account_id="acc_x", name="crm", url=url,
                   secret_encrypted=seal_secret(SERVER_KEY, wid, secret),
                   previous_secret_encrypted=seal_secret(SERVER_KEY, wid, previous) if previous else None,
                   previous_secret_expires_at=previous_until)


async def _deliver(webhook: Webhook) -> None:
    event = build_event(type="user.created", account_id="acc_x", subject={"type": "user", "id": "usr_1"},
                        data={"name": "Ada Lovelace, ü"})
    sender = Sender(timeout_seconds=2, allow_private=True)
    try:
        result = await attempt(sender, webhook, event, SERVER_KEY)
    finally:
        await sender.aclose()
    assert result.ok, result.error


class TestSignatures:
    async def test_a_delivery_verifies_with_standardwebhooks(self, capture) -> None:
        url, got = capture
        secret = signing.generate_secret()
        await _deliver(_webhook(url, secret))
        headers, body = got[0]
        payload = StandardWebhook(secret).verify(body, headers)
        assert payload["type"] == "user.created"
        assert payload["id"] == headers["webhook-id"]
        with pytest.raises(WebhookVerificationError):
            StandardWebhook(signing.generate_secret()).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            StandardWebhook(secret).verify(body.replace(b"Ada", b"Eve"), headers)

    async def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new(self, capture) -> None:
        url, got = capture
        old, new = signing.generate_secret(), signing.generate_secret()
        await _deliver(_webhook(url, new, previous=old, previous_until=now_ms() + 60_000))
        headers, body = got[0]
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            StandardWebhook(secret).verify(body, headers)
        # Each signature on its own is a valid Standard Webhooks header for its secret.
        for secret, signature in zip((new, old), headers["webhook-signature"].split(" "), strict=True):
            StandardWebhook(secret).verify(body, {**headers, "webhook-signature": signature})
        # The grace period over, the old secret no longer signs.
        await _deliver(_webhook(url, new, previous=old, previous_until=now_ms() - 1))
        headers, body = got[1]
        StandardWebhook(new).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            StandardWebhook(old).verify(body, headers)
