"""Per-request (metered) events go through the shared batcher, off the request path."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from app.events.batcher import event_row
from app.events.service import record

log = logging.getLogger("authpi.oidc")
_background: set[asyncio.Task[None]] = set()


def metered_occurrence(app: Any, holder: Any, data: dict[str, Any], **kwargs: Any) -> None:
    """A recurring metered event (one client's tokens): the row is built once per holder and each
    occurrence only adds its id, time and data (the batcher's cheap path)."""
    batcher = getattr(app.state, "event_batcher", None)
    if batcher is None or not hasattr(batcher, "add_occurrence"):
        metered(app, data=data, **kwargs)
        return
    template = getattr(holder, "event_template", None)
    if template is None:

        template = event_row(data={}, **kwargs)
        holder.event_template = template
    batcher.add_occurrence(template, json.dumps(data, separators=(",", ":")))


def metered(app: Any, **kwargs: Any) -> None:
    """Enqueue on app.state.event_batcher; without one (never in `serve`), write in the background."""
    batcher = getattr(app.state, "event_batcher", None)
    if batcher is not None:
        batcher.add(**kwargs)
        return

    async def write() -> None:
        try:
            async with app.state.db.unit_of_work() as session:
                await record(session, **kwargs)
        except Exception:  # noqa: BLE001 - a metered event must never fail the request
            log.exception("metered event not written")

    task = asyncio.get_running_loop().create_task(write())
    _background.add(task)
    task.add_done_callback(_background.discard)
