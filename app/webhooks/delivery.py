"""One HTTP attempt of a delivery: sign, POST with a hard deadline, read a bounded response body.
Plus the retry schedule (exponential backoff with jitter) and the secrets a webhook signs with."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

from app.core import crypto
from app.core.ids import now_ms
from app.events.service import event_to_api
from app.models.event import Event
from app.models.webhook import Webhook
from app.webhooks import signing
from app.webhooks.http import Client, HttpError, Resolver
from app.webhooks.url_safety import UnsafeTarget, url_problem

MAX_RESPONSE_BODY = 2048
MAX_ERROR = 1000


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    started_at: int
    duration_ms: int
    status: int | None = None
    body: str | None = None
    error: str | None = None


def secret_associated_data(webhook_id: str) -> bytes:
    # Binds the ciphertext to its row: a secret copied onto another webhook does not decrypt.
    return f"webhook:{webhook_id}".encode()


def seal_secret(server_key: str, webhook_id: str, secret: str) -> str:
    return crypto.encrypt(server_key, secret.encode(), secret_associated_data(webhook_id))


def signing_secrets(webhook: Webhook, server_key: str, at_ms: int | None = None) -> list[str]:
    """The current secret, plus the previous one while its rotation grace period lasts."""
    ad = secret_associated_data(webhook.id)
    out = [crypto.decrypt(server_key, webhook.secret_encrypted, ad).decode()]
    at_ms = at_ms or now_ms()
    if (webhook.previous_secret_encrypted and webhook.previous_secret_expires_at
            and webhook.previous_secret_expires_at > at_ms):
        out.append(crypto.decrypt(server_key, webhook.previous_secret_encrypted, ad).decode())
    return out


def payload(event: Event) -> bytes:
    """Exactly what GET {A}/events/{id} returns for the event."""
    return json.dumps(event_to_api(event), separators=(",", ":"), ensure_ascii=False).encode()


def retry_delay_ms(policy: dict[str, Any], attempts_made: int) -> int:
    """Delay before attempt attempts_made+1: exponential, capped, spread by +/- jitter so a
    recovering receiver is not hit by every endpoint's retries at the same instant."""
    base = policy["initial_delay_ms"] * policy["multiplier"] ** max(0, attempts_made - 1)
    base = min(float(policy["max_delay_ms"]), base)
    jitter = float(policy["jitter"])
    return max(0, int(base * (1.0 + random.uniform(-jitter, jitter))))


class Sender:
    """The outbound client: no redirects, no proxies, every new connection checked against
    private targets (unless allowed) at connect time, a deadline per attempt, at most
    PER_ORIGIN requests in flight per receiver (a batch does not hit one endpoint all at once)."""

    PER_ORIGIN = 8

    def __init__(self, *, timeout_seconds: float, allow_private: bool,
                 ssl_context: ssl.SSLContext | None = None, resolve: Resolver | None = None) -> None:
        self.timeout = timeout_seconds
        self.allow_private = allow_private
        # `resolve` (default: url_safety.resolve_public unless private targets are allowed) answers
        # the checked addresses every new connection is pinned to.
        self.client = Client(allow_private=allow_private, per_origin=self.PER_ORIGIN, ssl_context=ssl_context,
                             resolve=resolve)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
        started = now_ms()
        t0 = time.perf_counter()

        def done(**kw: Any) -> AttemptResult:
            return AttemptResult(started_at=started, duration_ms=int((time.perf_counter() - t0) * 1000), **kw)

        if not self.allow_private:
            problem = url_problem(url)
            if problem:
                return done(ok=False, error=f"refused: the URL {problem}")
        try:
            response = await asyncio.wait_for(
                self.client.post(url, headers, body, max_body=MAX_RESPONSE_BODY), self.timeout)
        except TimeoutError:
            return done(ok=False, error=f"timeout after {self.timeout:g}s")
        except UnsafeTarget as exc:
            return done(ok=False, error=f"refused: {exc}"[:MAX_ERROR])
        except HttpError as exc:
            return done(ok=False, error=str(exc)[:MAX_ERROR])
        ok = 200 <= response.status < 300
        return done(ok=ok, status=response.status, body=response.body.decode("utf-8", "replace"),
                    error=None if ok else f"HTTP {response.status}")


async def attempt(sender: Sender, webhook: Webhook, event: Event, server_key: str) -> AttemptResult:
    """Sign and send one event to one webhook. webhook-id is the event id: stable across retries
    and redeliveries, so receivers can drop duplicates."""
    body = payload(event)
    timestamp = int(time.time())
    headers = signing.headers(signing_secrets(webhook, server_key), event.id, timestamp, body)
    return await sender.post(webhook.url, headers, body)
