"""Webhook fixtures: a live receiver, event emission through record(), webhook creation by SDK."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.events.service import record
from tests.webhooks.receiver import Receiver

_paths = itertools.count()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def path() -> str:
    """A fresh receiver path per test, so tests never see each other's deliveries."""
    return f"/hook/{next(_paths)}-{time.time_ns()}"


async def emit(app: FastAPI, account_id: str, type: str, subject_id: str, *, subject_type: str = "user",
               data: dict[str, Any] | None = None, **columns: Any) -> str:
    """Record one event in its own transaction, as a mutation would. Returns its id."""
    async with app.state.db.unit_of_work() as session:
        event = await record(session, type=type, account_id=account_id,
                             subject={"type": subject_type, "id": subject_id}, data=data or {},
                             auth={"type": "system", "actor": "test"}, **columns)
    return event.id


async def create_hook(admin: AuthPIAdmin, receiver: Receiver, path: str, events: list[str],
                      **extra: Any) -> Any:
    """Create a webhook pointing at the receiver and teach the receiver its secret."""
    hook = await admin.webhooks.create({"name": "hook", "url": receiver.endpoint(path),
                                        "auth": {"type": "signature"}, "events": events, **extra})
    receiver.secrets[path] = [hook.auth.model_extra["secret"]]
    return hook


async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.time() > deadline:
            return result
        await asyncio.sleep(interval)
