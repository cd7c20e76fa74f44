"""Idempotency-Key on POST/PATCH (SDK-CONTRACT §1.7): a replay returns the first 2xx response.

Pure ASGI so that every other request (the GET hot path above all) passes straight through.
Records are scoped to an HMAC of the presented credential: only the same caller can replay.
Stored bodies are encrypted under the server key: a create response may carry a one-time secret
(`secret_plain`, a client `secret`), which must not sit readable in the database for 24 h.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.crypto import decrypt, encrypt, hmac_sha256
from app.core.errors import ApiError, Conflict, ValidationFailed
from app.core.ids import now_ms
from app.models.idempotency_key import IdempotencyKey

RETENTION_MS = 24 * 3600 * 1000
# An in-flight record older than this is taken to belong to a crashed request.
STALE_IN_FLIGHT_MS = 60 * 1000
_REPLAYED_HEADERS = ("content-type", "etag", "location")


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
                     ) -> None:
    raw = b"" if status == 204 else json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def _seal(server_key: str, scope_key: str, key: str, body: bytes) -> bytes:
    # Bound to its record: a sealed body copied to another (scope, key) does not open.
    return encrypt(server_key, body, f"{scope_key}/{key}".encode()).encode()


def _open(server_key: str, scope_key: str, key: str, sealed: bytes) -> bytes:
    return decrypt(server_key, sealed.decode(), f"{scope_key}/{key}".encode())


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("POST", "PATCH")
                or not scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)  # e.g. POST /{issuer}/token: nothing to decode
            return
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        if key is None or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if not (1 <= len(key) <= 256):
            await _send_json(send, 422, ValidationFailed(
                "Idempotency-Key must be 1-256 characters", field="Idempotency-Key").body())
            return

        # Read the body once; replay it to the app.
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)

        state = scope["app"].state
        credential = headers.get("authorization", "")
        scope_key = hmac_sha256(state.secret_key, "idem:" + credential)[:64]
        fingerprint = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body).hexdigest()

        claimed, early = await self._claim(state.db, state.secret_key, scope_key, key, fingerprint)
        if early is not None:
            status, payload, extra = early
            await _send_json(send, status, payload, extra)
            return
        if not claimed:
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def replay_receive() -> Message:
            nonlocal body
            data, body = body, b""
            return {"type": "http.request", "body": data, "more_body": False}

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            await self._finish(state.db, state.secret_key, scope_key, key, captured)

    async def _claim(self, db: Any, server_key: str, scope_key: str, key: str, fingerprint: str
                     ) -> tuple[bool, tuple[int, Any, dict[str, str]] | None]:
        now = now_ms()
        async with db.unit_of_work() as session:
            await session.execute(delete(IdempotencyKey).where(
                IdempotencyKey.scope == scope_key, IdempotencyKey.key == key,
                IdempotencyKey.created_at < now - RETENTION_MS))
            inserted = await session.execute(
                insert(IdempotencyKey)
                .values(scope=scope_key, key=key, fingerprint=fingerprint, state="in_flight",
                        created_at=now)
                .on_conflict_do_nothing()
                .returning(IdempotencyKey.key))
            if inserted.first() is not None:
                return True, None
            row = await session.scalar(select(IdempotencyKey).where(
                IdempotencyKey.scope == scope_key, IdempotencyKey.key == key).with_for_update())
            if row is None:
                return True, None
            if row.fingerprint != fingerprint:
                err: ApiError = ValidationFailed(
                    "This Idempotency-Key was used with another request body", field="Idempotency-Key",
                    code="idempotency_key_reused")
                return False, (err.status_code, err.body(), {})
            if row.state == "in_flight":
                if row.created_at < now - STALE_IN_FLIGHT_MS:
                    await session.execute(update(IdempotencyKey).where(
                        IdempotencyKey.scope == scope_key, IdempotencyKey.key == key
                    ).values(created_at=now))
                    return True, None
                err = Conflict("A request with this Idempotency-Key is in progress",
                               headers={"Retry-After": "1"})
                return False, (err.status_code, err.body(), {"Retry-After": "1"})
            stored_headers = dict(row.response_headers or {})
            stored_headers["Idempotent-Replayed"] = "true"
            replay = json.loads(_open(server_key, scope_key, key, row.response_body)) \
                if row.response_body else {}
            return False, (row.response_status or 200, replay, stored_headers)

    async def _finish(self, db: Any, server_key: str, scope_key: str, key: str,
                      captured: dict[str, Any]) -> None:
        async with db.unit_of_work() as session:
            status = captured["status"]
            if 200 <= status < 300:
                kept = {k.decode(): v.decode("latin-1") for k, v in captured["headers"]
                        if k.decode().lower() in _REPLAYED_HEADERS and k.decode().lower() != "content-type"}
                await session.execute(update(IdempotencyKey).where(
                    IdempotencyKey.scope == scope_key, IdempotencyKey.key == key
                ).values(state="done", response_status=status, response_headers=kept,
                         response_body=_seal(server_key, scope_key, key, captured["body"] or b"{}")))
            else:
                # Only successes are kept: a failed request may be retried with the same key.
                await session.execute(delete(IdempotencyKey).where(
                    IdempotencyKey.scope == scope_key, IdempotencyKey.key == key))
