"""One LISTEN/NOTIFY connection per process, shared by every cache and by the webhook relay.

Subscribers name a topic (a NOTIFY channel) and get typed `Message`s (`kind:ident` payloads parsed);
each also gives a `resync` callback, called when the listener was lost (anything may have been
missed: drop or distrust what is cached) and again once it is back. The connection reconnects with
exponential backoff and is probed every few seconds, since a silently dead TCP connection delivers
nothing. `last_contact` records the last time the database answered, for the outage rules of the
caches (see `app.api_key.verification`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger("authpi.runtime.hub")

PROBE_SECONDS = 5.0
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: `kind:ident` payloads are split (a bare payload is kind only)."""

    topic: str
    kind: str
    ident: str
    payload: str
    pid: int

    @classmethod
    def parse(cls, topic: str, payload: str, pid: int = 0) -> Message:
        kind, _, ident = payload.partition(":")
        return cls(topic=topic, kind=kind, ident=ident, payload=payload, pid=pid)


OnMessage = Callable[[Message], None]
OnResync = Callable[[], None]


@dataclass(slots=True)
class _Subscription:
    topic: str
    on_message: OnMessage
    on_resync: OnResync | None


class Hub:
    """The process's listener. `subscribe` before or after `start`; `stop` closes it."""

    def __init__(self, dsn: str, *, name: str = "authpi-listener") -> None:
        self.dsn = dsn
        self.name = name
        self._subs: list[_Subscription] = []
        self._conn: asyncpg.Connection | None = None
        self._listening: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self.connected = False
        self.last_contact = 0.0  # time.monotonic() of the last answer from the database
        self.reconnects = 0
        # (sending backend pid, payload) of this process's own NOTIFYs whose echo is awaited.
        self._echo_waiters: dict[tuple[int, str], asyncio.Future[None]] = {}

    # -- subscriptions ---------------------------------------------------------------------------
    def subscribe(self, topic: str, on_message: OnMessage, on_resync: OnResync | None = None) -> None:
        self._subs.append(_Subscription(topic, on_message, on_resync))
        conn = self._conn
        if conn is not None and not conn.is_closed() and topic not in self._listening:
            self._listening.add(topic)
            asyncio.ensure_future(self._add_listener(conn, topic))

    def unsubscribe(self, on_message: OnMessage) -> None:
        self._subs = [s for s in self._subs if s.on_message != on_message]

    def dispatch(self, message: Message) -> None:
        """Deliver a message to this process's subscribers (also used for local changes)."""
        for sub in list(self._subs):
            if sub.topic == message.topic:
                try:
                    sub.on_message(message)
                except Exception:  # noqa: BLE001 - one subscriber must not starve the others
                    log.exception("hub subscriber failed on %s", message.topic)

    def _resync(self) -> None:
        for sub in list(self._subs):
            if sub.on_resync is not None:
                try:
                    sub.on_resync()
                except Exception:  # noqa: BLE001
                    log.exception("hub resync failed on %s", sub.topic)

    # -- own echoes ------------------------------------------------------------------------------
    def expect_echo(self, pid: int, payload: str) -> asyncio.Future[None] | None:
        """A future resolved when this NOTIFY comes back through the listener (None when not live)."""
        if not self.live():
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._echo_waiters[(pid, payload)] = waiter
        return waiter

    def forget_echo(self, pid: int, payload: str) -> None:
        self._echo_waiters.pop((pid, payload), None)

    # -- the connection --------------------------------------------------------------------------
    def live(self) -> bool:
        conn = self._conn
        return self.connected and conn is not None and not conn.is_closed()

    def touch(self) -> None:
        """The database answered (a query of any component counts)."""
        self.last_contact = time.monotonic()

    def contact_age(self) -> float:
        return time.monotonic() - self.last_contact if self.last_contact else float("inf")

    async def start(self, *, wait: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=wait)
        except TimeoutError:
            log.warning("listener not connected yet; caches verify by database meanwhile")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None

    async def _add_listener(self, conn: asyncpg.Connection, topic: str) -> None:
        def on_notify(_c: Any, pid: int, channel: str, payload: str) -> None:
            self.touch()
            waiter = self._echo_waiters.pop((pid, payload), None)
            if waiter is not None:
                # Our own change: the caches here were invalidated when it was made.
                if not waiter.done():
                    waiter.set_result(None)
                return
            self.dispatch(Message.parse(channel, payload, pid))

        await conn.add_listener(topic, on_notify)

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._closing:
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10,
                                             server_settings={"application_name": self.name})
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                self._listening = set()
                for topic in {s.topic for s in self._subs}:
                    self._listening.add(topic)
                    await self._add_listener(conn, topic)
                self._conn = conn
                self.touch()
                self.connected = True
                self._resync()  # anything may have changed while we were not listening
                self._ready.set()
                backoff = BACKOFF_FIRST
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=PROBE_SECONDS)
                    except TimeoutError:
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=PROBE_SECONDS)
                        self.touch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever happened
                if not self._closing:
                    log.warning("listener lost (%s); reconnecting", type(exc).__name__)
            finally:
                was_connected = self.connected
                self.connected = False
                self._conn = None
                if was_connected:
                    self.reconnects += 1
                    self._resync()
                if conn is not None and not conn.is_closed():
                    if self._closing:
                        try:
                            await asyncio.wait_for(conn.close(), timeout=2)
                        except Exception:  # noqa: BLE001
                            conn.terminate()
                    else:
                        conn.terminate()
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)


def is_unreachable(exc: BaseException) -> bool:
    """The database could not be reached (refused, reset, shut down, timed out), as opposed to
    an error in a statement: looks through SQLAlchemy's wrapping and the cause chain."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, (OSError, TimeoutError, asyncpg.InterfaceError,
                                asyncpg.PostgresConnectionError,
                                asyncpg.exceptions.AdminShutdownError,
                                asyncpg.exceptions.CrashShutdownError,
                                asyncpg.exceptions.CannotConnectNowError)):
            return True
        if getattr(current, "connection_invalidated", False):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False
