"""Writing to the outbox, in the caller's transaction (so a rollback sends nothing)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import crypto
from app.core.ids import new_id, now_ms
from app.models.outbox import OutboxMessage
from app.outbox.registry import get_kind

CHANNEL = "authpi_outbox"


def payload_associated_data(row_id: str) -> bytes:
    # Binds the ciphertext to its row: a payload copied onto another row does not decrypt.
    return f"outbox:{row_id}".encode()


def seal_payload(server_key: str, row_id: str, payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return crypto.encrypt(server_key, raw, payload_associated_data(row_id))


def open_payload(server_key: str, row: OutboxMessage) -> dict[str, Any]:
    if row.payload_encrypted is None:
        return {}
    value = json.loads(crypto.decrypt(server_key, row.payload_encrypted, payload_associated_data(row.id)))
    return value if isinstance(value, dict) else {}


def message_id_for(row_id: str, public_url: str) -> str:
    """RFC 5322 Message-ID, stable for the row: every retry carries the same one."""
    domain = urlsplit(public_url).hostname or "localhost"
    return f"<{row_id}@{domain}>"


async def enqueue(session: AsyncSession, *, server_key: str, public_url: str, kind: str,
                  account_id: str, payload: dict[str, Any], issuer_id: str | None = None,
                  purpose: str | None = None, ref_id: str | None = None, delay_ms: int = 0
                  ) -> OutboxMessage:
    """Add a message to the outbox in the current transaction and wake the relays on commit."""
    if get_kind(kind) is None:
        raise ValueError(f"unknown outbox kind {kind!r}: register it with app.outbox.registry")
    now = now_ms()
    row_id = new_id("obx")
    row = OutboxMessage(
        id=row_id, account_id=account_id, issuer_id=issuer_id, kind=kind, purpose=purpose,
        ref_id=ref_id, message_id=message_id_for(row_id, public_url),
        payload_encrypted=seal_payload(server_key, row_id, payload), status="pending", attempts=0,
        next_attempt_at=now + delay_ms, created_at=now)
    session.add(row)
    await session.flush()
    # Delivered by PostgreSQL at commit only (never for a rolled-back change).
    await session.execute(text("SELECT pg_notify(:c, :k)"), {"c": CHANNEL, "k": kind})
    return row
