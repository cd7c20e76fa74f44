"""Kinds of outbox message: how one is delivered, and what is recorded once it was (or finally was
not). Each kind registers itself once, at import."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models.outbox import OutboxMessage


class PermanentFailure(Exception):  # noqa: N818 - reads as what it is: no retry will help
    """Raised by `deliver` when retrying cannot help (a recipient refused for good)."""


@dataclass(frozen=True)
class DeliveryContext:
    settings: Settings
    server_key: str


# deliver(ctx, row, payload): send it; raise to fail (PermanentFailure: no retry). Runs while the
# row is locked by the relay's transaction, so no other relay sends it at the same time.
Deliver = Callable[[DeliveryContext, OutboxMessage, dict[str, Any]], Awaitable[None]]
# on_sent(session, row, payload): in the relay's transaction, after a successful delivery.
OnSent = Callable[[AsyncSession, OutboxMessage, dict[str, Any]], Awaitable[None]]
# on_failed(session, row, payload, error, final): after a failed attempt (final: no more retries).
OnFailed = Callable[[AsyncSession, OutboxMessage, dict[str, Any], str, bool], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    name: str
    deliver: Deliver
    on_sent: OnSent | None = None
    on_failed: OnFailed | None = None
    # None: AUTHPI_OUTBOX_MAX_ATTEMPTS.
    max_attempts: int | None = None


_KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> None:
    existing = _KINDS.get(kind.name)
    if existing is not None and existing != kind:
        raise ValueError(f"outbox kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind


def get_kind(name: str) -> Kind | None:
    return _KINDS.get(name)


def kind_names() -> list[str]:
    return sorted(_KINDS)
