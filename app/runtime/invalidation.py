"""Cache invalidation, published by services inside the transaction that changes the row.

`await publish(session, "key", key_id)` sends `NOTIFY authpi_invalidation 'key:<id>'` in the
session's transaction: PostgreSQL delivers it only if the transaction commits, so no replica drops
an entry for a change that was rolled back, and none misses one that was committed. Kinds:
`key`, `org`, `issuer`, `account`, `client`, `agent` (subscribers ignore the kinds they do not cache).

The session's `Database` may carry this process's `Hub` (`session.info["hub"]`, set by
`Database.unit_of_work`): the change is then applied to the caches here at once and again right
after the commit, without waiting for its echo; and the request's unit of work (`db_session`)
answers only once the echo has come back through the listener, i.e. once PostgreSQL has dispatched
it to every listening replica (bounded by `ECHO_WAIT_SECONDS`). A session without a hub (the CLI)
only NOTIFYs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.runtime.hub import Hub, Message, OnMessage, OnResync

TOPIC = "authpi_invalidation"
KINDS = ("key", "org", "issuer", "account", "client", "agent")
ECHO_WAIT_SECONDS = 0.5


def subscribe(hub: Hub, handlers: dict[str, Callable[[str], None]], resync: OnResync) -> OnMessage:
    """Route this topic's messages by kind to `handlers` (kind -> handler(ident)); kinds without a
    handler are ignored. `resync` runs when the listener was lost and when it is back. Returns the
    subscription's callback (for `hub.unsubscribe`)."""

    def on_message(message: Message) -> None:
        handler = handlers.get(message.kind)
        if handler is not None:
            handler(message.ident)

    hub.subscribe(TOPIC, on_message, resync)
    return on_message


async def publish(session: AsyncSession, kind: str, ident: str) -> None:
    """Invalidate `kind:ident` on every replica when this transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown invalidation kind {kind!r}")
    payload = f"{kind}:{ident}"
    result = await session.execute(text("SELECT pg_notify(:c, :p), pg_backend_pid()"),
                                   {"c": TOPIC, "p": payload})
    pid = int(result.one()[1])
    hub: Hub | None = session.info.get("hub")
    if hub is None:
        return
    message = Message.parse(TOPIC, payload, pid)
    hub.dispatch(message)
    event.listen(session.sync_session, "after_commit", lambda _s: hub.dispatch(message), once=True)
    waiter = hub.expect_echo(pid, payload)
    if waiter is None:
        return  # no live listener: nothing would come back (caches then re-check the database)

    async def wait_for_echo() -> None:
        try:
            await asyncio.wait_for(asyncio.shield(waiter), ECHO_WAIT_SECONDS)
        except TimeoutError:
            pass
        finally:
            hub.forget_echo(pid, payload)

    # Run by app.core.session.db_session after the commit, before the response is sent.
    session.info.setdefault("after_commit", []).append(wait_for_echo)
