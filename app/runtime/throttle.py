"""The failure throttle: one for every credential check (API keys, client secrets, agent secrets,
passwords, and later one-time codes), its state shared by every replica.

Rules
-----
Failures are counted in fixed windows (`window` seconds from a counter's first failure) by three
counters:

- per (kind, credential, address): `limit` failures, then that address is refused for that
  credential until the window ends;
- per address: `address_limit` failures over every credential (unknown ids and malformed
  credentials count here only), then the address is refused for everything not already verified;
- per (kind, credential): never refuses. Beyond `limit` failures in a window, every admission of
  that credential waits a progressive delay (doubling every `limit` further failures, at most
  `max_delay`), so brute force spread over many addresses is slowed, and argon2 admission bounds
  the rest, while the account is never locked.

So a correct secret or password from an address that has not been failing is never refused for
someone else's failures: knowing a key id or a username does not let anyone lock its holder out.
A success clears its (credential, address) counter and the credential's delay (call `admit`
first: a success whose admission saw no failure has nothing to clear and costs no round trip).

API
---
    retry_after = await throttle.admit(kind, credential_id, address)
    if retry_after is not None:      # refuse: 429 / `Retry-After: retry_after`
        ...
    ok = check the secret
    if ok:
        await throttle.succeeded(kind, credential_id, address)
    else:
        await throttle.failed(kind, credential_id, address)   # credential_id None: unknown id

`kind` names the credential family ("api_key", "client", "agent", "password", "totp", ...);
`credential_id` is its id (a username for passwords: unknown usernames count too, so a spray looks
the same either way); `address` is what `app.runtime.address.ClientAddress` resolved (IPv6 is
counted per /64 here). `admit` may sleep (the progressive delay) before it answers.

Storage: an UNLOGGED PostgreSQL table (`auth_failures`), or Redis when `AUTHPI_REDIS_URL` is set.
A refusal is also remembered in the process until its window ends, so a flood of refused attempts
costs no round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import asyncpg

from app.core.ids import now_ms
from app.runtime.address import throttle_key

# (failures, ms when the counter's window ends)
Count = tuple[int, int]


class Store(Protocol):
    async def read(self, counters: list[str], now: int) -> dict[str, Count]: ...
    async def incr(self, counters: list[str], now: int, window_ms: int) -> dict[str, Count]: ...
    async def clear(self, counters: list[str]) -> None: ...


_INCR = """
INSERT INTO auth_failures AS f (counter, window_start, failures, expires_at)
SELECT c, $2::bigint, 1, $2::bigint + $3::bigint FROM unnest($1::text[]) AS c
ON CONFLICT (counter) DO UPDATE SET
  failures = CASE WHEN f.expires_at <= $2::bigint THEN 1 ELSE f.failures + 1 END,
  window_start = CASE WHEN f.expires_at <= $2::bigint THEN $2::bigint ELSE f.window_start END,
  expires_at = CASE WHEN f.expires_at <= $2::bigint THEN $2::bigint + $3::bigint ELSE f.expires_at END
RETURNING counter, failures, expires_at
"""


class PostgresStore:
    """Counters in the UNLOGGED `auth_failures` table (one statement per operation)."""

    PURGE_EVERY_MS = 60_000

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._purged = 0

    async def read(self, counters: list[str], now: int) -> dict[str, Count]:
        rows = await self.pool.fetch(
            "SELECT counter, failures, expires_at FROM auth_failures "
            "WHERE counter = ANY($1::text[]) AND expires_at > $2", counters, now)
        return {r["counter"]: (r["failures"], r["expires_at"]) for r in rows}

    async def incr(self, counters: list[str], now: int, window_ms: int) -> dict[str, Count]:
        # Sorted: concurrent upserts of the same rows lock them in one order (no deadlock).
        rows = await self.pool.fetch(_INCR, sorted(set(counters)), now, window_ms)
        if now - self._purged > self.PURGE_EVERY_MS:
            self._purged = now
            await self.pool.execute("DELETE FROM auth_failures WHERE expires_at < $1", now)
        return {r["counter"]: (r["failures"], r["expires_at"]) for r in rows}

    async def clear(self, counters: list[str]) -> None:
        await self.pool.execute("DELETE FROM auth_failures WHERE counter = ANY($1::text[])", counters)


class RedisStore:
    """Counters in Redis (`AUTHPI_REDIS_URL`): INCR with the window as the key's expiry."""

    PREFIX = "authpi:fail:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis  # optional dependency: only with AUTHPI_REDIS_URL

        self.redis: Any = redis.from_url(url)

    async def read(self, counters: list[str], now: int) -> dict[str, Count]:
        pipe = self.redis.pipeline(transaction=False)
        for c in counters:
            pipe.get(self.PREFIX + c)
            pipe.pttl(self.PREFIX + c)
        got = await pipe.execute()
        out: dict[str, Count] = {}
        for i, c in enumerate(counters):
            value, ttl = got[2 * i], got[2 * i + 1]
            if value is not None and ttl is not None and ttl > 0:
                out[c] = (int(value), now + int(ttl))
        return out

    async def incr(self, counters: list[str], now: int, window_ms: int) -> dict[str, Count]:
        pipe = self.redis.pipeline(transaction=True)
        for c in counters:
            pipe.set(self.PREFIX + c, 0, px=window_ms, nx=True)
            pipe.incr(self.PREFIX + c)
            pipe.pttl(self.PREFIX + c)
        got = await pipe.execute()
        return {c: (int(got[3 * i + 1]), now + max(1, int(got[3 * i + 2])))
                for i, c in enumerate(counters)}

    async def clear(self, counters: list[str]) -> None:
        await self.redis.delete(*(self.PREFIX + c for c in counters))

    async def close(self) -> None:
        await self.redis.aclose()


class FailureThrottle:
    """See the module docstring for the rules and the API."""

    def __init__(self, store: Store, *, limit: int, address_limit: int, window_seconds: float,
                 max_delay: float = 2.0, delay_step: float = 0.25, max_memo: int = 100_000) -> None:
        self.store = store
        self.limit = max(1, limit)
        self.address_limit = max(1, address_limit)
        self.window_ms = int(window_seconds * 1000)
        self.max_delay = max_delay
        self.delay_step = delay_step
        self.max_memo = max_memo
        # counter -> ms when its refusal ends (refusals only grow within a window).
        self._refused: dict[str, int] = {}
        # (credential, address) pairs whose admission saw failures: a success has something to
        # clear (a success without failures before it costs no round trip).
        self._dirty: set[tuple[str, str, str]] = set()

    @staticmethod
    def _counters(kind: str, credential: str | None, address: str) -> tuple[str | None, str, str | None]:
        addr = throttle_key(address)
        if credential is None:
            return None, f"a:{addr}", None
        return f"p:{kind}:{credential}:{addr}", f"a:{addr}", f"c:{kind}:{credential}"

    def _memo_refusal(self, counters: list[str], now: int) -> int | None:
        ends = [self._refused.get(c, 0) for c in counters]
        until = max(ends, default=0)
        return until if until > now else None

    def _remember(self, counter: str, until: int) -> None:
        if len(self._refused) >= self.max_memo:
            now = now_ms()
            self._refused = {c: u for c, u in self._refused.items() if u > now}
            if len(self._refused) >= self.max_memo:
                self._refused.clear()
        self._refused[counter] = until

    @staticmethod
    def _seconds(until: int, now: int) -> int:
        return max(1, -(-(until - now) // 1000))

    def delay_for(self, failures: int) -> float:
        """The progressive delay of a credential with `failures` in its window."""
        if failures < self.limit:
            return 0.0
        return min(self.max_delay, self.delay_step * 2 ** ((failures - self.limit) // self.limit))

    async def admit(self, kind: str, credential: str | None, address: str) -> int | None:
        """None when the attempt may go on (after the credential's delay, if any); else the
        seconds to wait before trying again."""
        pair, addr, cred = self._counters(kind, credential, address)
        refusing = [c for c in (pair, addr) if c is not None]
        now = now_ms()
        until = self._memo_refusal(refusing, now)
        if until is not None:
            return self._seconds(until, now)
        counts = await self.store.read([c for c in (pair, addr, cred) if c is not None], now)
        limits = {addr: self.address_limit}
        if pair is not None:
            limits[pair] = self.limit
        for counter, limit in limits.items():
            failures, ends = counts.get(counter, (0, 0))
            if failures >= limit and ends > now:
                self._remember(counter, ends)
                return self._seconds(ends, now)
        if credential is not None and (pair in counts or cred in counts):
            if len(self._dirty) >= self.max_memo:
                self._dirty.clear()
            self._dirty.add((kind, credential, address))
        if cred is not None:
            delay = self.delay_for(counts.get(cred, (0, 0))[0])
            if delay > 0:
                await asyncio.sleep(delay)
        return None

    async def failed(self, kind: str, credential: str | None, address: str) -> int:
        """Count a failure; returns the credential's failures in its window (the address's for an
        unknown credential)."""
        pair, addr, cred = self._counters(kind, credential, address)
        counters = [c for c in (pair, addr, cred) if c is not None]
        now = now_ms()
        counts = await self.store.incr(counters, now, self.window_ms)
        if credential is not None:
            if len(self._dirty) >= self.max_memo:
                self._dirty.clear()
            self._dirty.add((kind, credential, address))
        if pair is not None and counts[pair][0] >= self.limit:
            self._remember(pair, counts[pair][1])
        if counts[addr][0] >= self.address_limit:
            self._remember(addr, counts[addr][1])
        return counts[cred][0] if cred is not None else counts[addr][0]

    async def succeeded(self, kind: str, credential: str, address: str) -> None:
        """The secret checked out: this address's failures on it and its delay are forgotten."""
        pair, _addr, cred = self._counters(kind, credential, address)
        counters = [c for c in (pair, cred) if c is not None]
        if (kind, credential, address) not in self._dirty:
            return  # its admission saw no failure to forget
        self._dirty.discard((kind, credential, address))
        for c in counters:
            self._refused.pop(c, None)
        await self.store.clear(counters)

    def forget_local(self) -> None:
        """Drop this process's memo of refusals (tests; the shared state is untouched)."""
        self._refused.clear()
