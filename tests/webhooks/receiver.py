"""A real HTTP receiver on 127.0.0.1 (a thread), verifying every delivery with the standardwebhooks
library, the specification's reference implementation (not our signing code)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    path: str
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request arrived
    status: int = 200
    # The receiver's secrets for this path, read when the test asks: a webhook subscribed to its own
    # `webhook.created` can be called before the test has learnt the secret from the create response.
    secrets: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def verified_with(self) -> list[str]:
        """Which of the configured secrets verify this delivery (standardwebhooks, not our code)."""
        ok = []
        for secret in list(self.secrets.get(self.path, [])):
            try:
                StandardWebhook(secret).verify(self.body, self.headers)
                ok.append(secret)
            except WebhookVerificationError:
                pass
        return ok

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.secrets: dict[str, list[str]] = {}  # path -> secrets to verify with
        self.scripts: dict[str, list[int]] = {}  # path -> statuses to answer, in turn
        self.default_status: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (httpx writes the head and the body apart): a
                    # real server never hands a truncated request to its application.
                    self.close_connection = True
                    return
                receiver._handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        item = Received(path=path, webhook_id=headers.get("webhook-id", ""), headers=headers, body=body,
                        at=time.time(), secrets=self.secrets)
        with self.lock:
            script = self.scripts.get(path)
            status = script.pop(0) if script else self.default_status.get(path, 200)
            delay = self.delay.get(path, 0.0)
        item.status = status
        if delay:
            time.sleep(delay)
        with self.lock:
            self.received.append(item)
        reply = json.dumps({"ok": status < 300, "note": "x" * 5000 if status >= 500 else ""}).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)

    # -- helpers for tests -----------------------------------------------------------------------
    def endpoint(self, path: str) -> str:
        return self.url + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 20.0, ok_only: bool = True
                       ) -> list[Received]:
        """Async: the relay under test may run on the test's own event loop."""
        deadline = time.time() + timeout
        while True:
            got = [r for r in self.at(path) if r.status < 300 or not ok_only]
            if len(got) >= count or time.time() > deadline:
                return got
            await asyncio.sleep(0.02)
