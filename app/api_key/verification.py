"""Verifying `key_id:secret` (HTTP Basic) into a Principal: the hot path of `GET /v1/me`.

Order of work, cheapest first, so that bad credentials cost little and never delay good ones:

1. Shape: a key id that cannot exist is refused (401) before anything else.
2. Warm cache: (key id, HMAC of the secret under a per-process key) -> the verified key, its
   Principal and its `/v1/me` body. A hit costs one HMAC and a dict lookup: no argon2, no database.
   Entries are trusted only while the invalidation listener is connected; their age is bounded by
   `key_cache_ttl_seconds`; expiry is checked locally from the cached `expires_at`.
3. Throttles: failed attempts per key id and per client address (fixed windows). Over the limit,
   anything that is not a warm hit gets 429 before touching the database or argon2, so a valid
   cached key keeps working while someone hammers its id with wrong secrets.
4. Cold path: one indexed SELECT through a plain asyncpg pool (key, organization, issuer and
   account status). Unknown ids and unusable keys (blocked, revoked, expired, inactive
   organization) are refused here with a generic 401, without hashing. Otherwise argon2id runs in
   a bounded thread pool; concurrent verifications of the same credential share one hash; when
   too much argon2 work is queued the excess is shed at once with 429.

Revocation is pushed, not polled: every change to a key, organization or issuer NOTIFYs
`invalidation.CHANNEL` in its transaction; each process LISTENs on one dedicated connection and
drops the affected entries; this process's own changes are applied to its caches directly, at
the change and after its commit. When the listener connection is lost the whole cache is dropped;
until it is back, entries are kept only as untrusted memos: every request re-reads the key from
the database, and argon2 is skipped only while the stored hash is the one the secret verified
against. argon2 threads run at a lower CPU priority than the event loop.

Failed attempts reach the owning account's trail as `api-key.verification.failed`, aggregated:
at most one event for the first failure of an existing key id in a throttle window and one when
the window's limit is reached (reason, client address, count). Unknown ids and malformed
credentials belong to no account and are only counted against the caller's address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import Request

from app.api_key.invalidation import (
    CHANNEL,
    echo_arrived,
    is_own_echo,
    register_listener,
    register_local,
    unregister_listener,
    unregister_local,
)
from app.config import Settings
from app.core.auth import Principal
from app.core.crypto import verify_secret
from app.core.db import to_asyncpg_dsn
from app.core.errors import ApiError, Forbidden, TooManyRequests, Unauthorized
from app.core.ids import looks_like_id, now_ms
from app.core.scopes import within

log = logging.getLogger("authpi.api_key.verification")

INVALID = "Invalid API key"
MAX_SECRET_LENGTH = 256
NEGATIVE_TTL = 10.0
ARGON2_NICE = 10

_LOOKUP = """
SELECT k.id, k.account_id, k.owner_kind, k.issuer_id, k.org_id, k.status, k.expires_at,
       k.restrictions::text AS restrictions, k.secret_hash, k.previous_secret_hash,
       k.previous_secret_expires_at,
       a.status AS account_status,
       o.status AS org_status, o.scopes::text AS org_scopes, o.issuer_id AS org_issuer_id,
       i.status AS issuer_status
FROM api_keys k
JOIN accounts a ON a.id = k.account_id
LEFT JOIN organizations o
       ON k.owner_kind = 'organization' AND o.id = k.org_id AND o.account_id = k.account_id
LEFT JOIN issuers i
       ON k.owner_kind = 'organization' AND i.id = k.issuer_id AND i.account_id = k.account_id
WHERE k.id = $1
"""


@dataclass(slots=True)
class CachedKey:
    key_id: str
    account_id: str
    org_id: str
    issuer_id: str
    mac: bytes
    secret_hash: str
    principal: Principal
    me_body: bytes
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
    # ms; the key's expiry, or the end of the rotation grace when the previous secret was used.
    valid_until: int | None
    cached_at: float
    trusted: bool
    # The `api-key.verified` row, built once by build_event; each verification adds id/time/data.
    event_template: tuple[Any, ...]


@dataclass(slots=True)
class KeyRow:
    """What the cold path reads about a key, and whether it may be used at all."""

    key_id: str
    account_id: str
    owner_kind: str
    issuer_id: str
    org_id: str
    status: str
    expires_at: int | None
    restrictions: dict[str, Any]
    secret_hash: str
    previous_secret_hash: str | None
    previous_secret_expires_at: int | None
    problem: str | None
    scopes: tuple[str, ...] = field(default=())


class FailureThrottle:
    """Failed attempts per subject in fixed windows; bounded memory."""

    def __init__(self, limit: int, window: float, max_subjects: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_subjects = max_subjects
        self._counts: dict[str, tuple[float, int]] = {}

    def retry_after(self, subject: str) -> int | None:
        """Seconds until `subject` may try again, or None when it is under the limit."""
        got = self._counts.get(subject)
        if got is None:
            return None
        start, count = got
        now = time.monotonic()
        if now - start >= self.window:
            del self._counts[subject]
            return None
        if count < self.limit:
            return None
        return max(1, int(start + self.window - now + 0.999))

    def record(self, subject: str) -> int:
        """Count one failure; returns the count in the current window."""
        now = time.monotonic()
        start, count = self._counts.get(subject, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if len(self._counts) >= self.max_subjects and subject not in self._counts:
            self._prune(now)
        self._counts[subject] = (start, count + 1)
        return count + 1

    def _prune(self, now: float) -> None:
        expired = [k for k, (s, _) in self._counts.items() if now - s >= self.window]
        for k in expired:
            del self._counts[k]
        if len(self._counts) >= self.max_subjects:
            # Still full of live windows: forget the oldest half rather than grow without bound.
            for k in list(self._counts)[: len(self._counts) // 2]:
                del self._counts[k]

    def clear(self) -> None:
        self._counts.clear()


class KeyCache:
    """Verified credentials of this process, invalidated by NOTIFY, bounded in age and size."""

    def __init__(self, ttl: float, max_keys: int = 100_000) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._by_key: dict[str, list[CachedKey]] = {}
        # Invalidation generations, so a cold verification that read the database before a
        # NOTIFY arrived never caches what it read (see `may_insert`).
        self.generation = 0
        self._cleared_at = 0
        self._touched: dict[str, int] = {}
        self.negative: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key_id: str, mac: bytes) -> CachedKey | None:
        entries = self._by_key.get(key_id)
        if not entries:
            return None
        for entry in entries:
            if hmac.compare_digest(entry.mac, mac):
                return entry
        return None

    def put(self, entry: CachedKey) -> None:
        if len(self._by_key) >= self.max_keys and entry.key_id not in self._by_key:
            # Evict the oldest inserted key: dicts keep insertion order.
            self._by_key.pop(next(iter(self._by_key)))
        entries = [e for e in self._by_key.get(entry.key_id, []) if e.mac != entry.mac]
        # A key is presented with at most two secrets at once (during a rotation grace).
        self._by_key[entry.key_id] = [*entries[-1:], entry]

    def drop_entry(self, entry: CachedKey) -> None:
        entries = self._by_key.get(entry.key_id)
        if entries and entry in entries:
            entries.remove(entry)
            if not entries:
                del self._by_key[entry.key_id]

    def clear(self) -> None:
        self._by_key.clear()
        self.negative.clear()
        self.generation += 1
        self._cleared_at = self.generation
        self._touched.clear()

    def invalidate(self, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        self.generation += 1
        if kind not in ("key", "org", "issuer", "account") or not ident:
            self.clear()
            return
        if len(self._touched) > 50_000:
            self._touched.clear()
            self._cleared_at = self.generation
        self._touched[payload] = self.generation
        if kind == "key":
            self._by_key.pop(ident, None)
            self.negative.pop(ident, None)
            return
        attr = {"org": "org_id", "issuer": "issuer_id", "account": "account_id"}[kind]
        stale = [k for k, entries in self._by_key.items() if getattr(entries[0], attr) == ident]
        for k in stale:
            del self._by_key[k]

    def may_insert(self, since: int, row: KeyRow) -> bool:
        """True when nothing about this key changed since generation `since` was read."""
        if since < self._cleared_at:
            return False
        for token in (f"key:{row.key_id}", f"org:{row.org_id}", f"issuer:{row.issuer_id}",
                      f"account:{row.account_id}"):
            if self._touched.get(token, 0) > since:
                return False
        return True

    def is_known_missing(self, key_id: str) -> bool:
        until = self.negative.get(key_id)
        if until is None:
            return False
        if until < time.monotonic():
            del self.negative[key_id]
            return False
        return True

    def remember_missing(self, key_id: str) -> None:
        if len(self.negative) >= 10_000:
            self.negative.clear()
        self.negative[key_id] = time.monotonic() + min(NEGATIVE_TTL, self.ttl)


def _lower_thread_priority() -> None:
    """Run argon2 threads at a lower CPU priority than the event loop (Linux schedules threads
    individually), so a flood of wrong secrets slows their hashing, not the loop serving valid
    cached keys."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ARGON2_NICE)
    except (AttributeError, OSError):  # not Linux, or not permitted: same priority then
        pass


class Argon2Gate:
    """argon2id off the event loop, in a bounded pool, with a cap on queued work."""

    def __init__(self, workers: int, max_pending: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="argon2",
                                        initializer=_lower_thread_priority)
        self.max_pending = max(1, max_pending)
        self._pending = 0
        self.hashes = 0
        # Concurrent checks of one credential share one hash (a burst of cold requests of a key).
        self._inflight: dict[tuple[str, bytes, str], asyncio.Future[bool]] = {}

    @property
    def pending(self) -> int:
        return self._pending

    async def verify(self, key_id: str, mac: bytes, stored_hash: str, secret: str) -> bool:
        token = (key_id, mac, stored_hash)
        shared = self._inflight.get(token)
        if shared is not None:
            return await asyncio.shield(shared)
        if self._pending >= self.max_pending:
            raise TooManyRequests(1, "Too many key verifications in progress; retry shortly")
        loop = asyncio.get_running_loop()
        self._pending += 1
        self.hashes += 1
        future = loop.run_in_executor(self._pool, verify_secret, stored_hash, secret)
        self._inflight[token] = future
        try:
            return await asyncio.shield(future)
        finally:
            self._inflight.pop(token, None)
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def parse_networks(values: Iterable[str] | None
                   ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    if not values:
        return None
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def address_allowed(networks: tuple[Any, ...] | None, address: str) -> bool:
    if networks is None:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


def scope_address(scope: dict[str, Any], trust_proxy_headers: bool) -> str:
    """The caller's address: the socket peer, or (behind a trusted proxy) the last X-Forwarded-For
    hop, which is the address our own proxy saw and the only one a client cannot forge."""
    if trust_proxy_headers:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                last = value.decode("latin-1").rsplit(",", 1)[-1].strip()
                if last:
                    return last
                break
    client = scope.get("client")
    return client[0] if client else "unknown"


def client_address(request: Request, trust_proxy_headers: bool) -> str:
    return scope_address(request.scope, trust_proxy_headers)


def _row_problem(r: asyncpg.Record, now: int) -> str | None:
    """Why a key cannot be used right now, or None (reasons go to the trail, never to the caller)."""
    if r["account_status"] != "active":
        return "account_inactive"
    if r["status"] != "active":
        return r["status"]  # blocked | revoked
    if r["expires_at"] is not None and r["expires_at"] <= now:
        return "expired"
    if r["owner_kind"] == "organization":
        if r["org_status"] is None or r["org_status"] != "active":
            return "organization_inactive"
        if r["org_issuer_id"] != r["issuer_id"] or r["issuer_status"] in (None, "deleted", "suspended"):
            return "issuer_inactive"
    return None


def _effective_scopes(r: asyncpg.Record, restrictions: dict[str, Any]) -> tuple[str, ...]:
    scopes = [s for s in restrictions.get("scopes", []) if isinstance(s, str)]
    if r["owner_kind"] == "organization" and r["org_scopes"]:
        granted = json.loads(r["org_scopes"])
        if granted:
            # The organization may have narrowed what it grants since the key was made.
            outside = set(within(scopes, granted))
            scopes = [s for s in scopes if s not in outside]
    return tuple(scopes)


def verified_event_template(principal: Principal) -> tuple[Any, ...]:
    from app.events.batcher import event_row

    org = not principal.account_level
    return event_row(
        type="api-key.verified", account_id=principal.account_id,
        issuer_id=principal.issuer_id if org else None, org_id=principal.org_id if org else None,
        subject={"type": "api_key", "id": principal.key_id, "org_id": principal.org_id,
                 "issuer_id": principal.issuer_id},
        data={}, auth=principal.event_auth(), event_id="evt_template", timestamp=0)


def identity_body(principal: Principal) -> bytes:
    from app.api_key.endpoints import caller_identity

    return json.dumps({"data": caller_identity(principal)}, separators=(",", ":")).encode()


async def yield_to_invalidations() -> None:
    """Let an invalidation that reached the listener in this loop iteration run before a cache read.

    A NOTIFY and the request it must govern can be read from their sockets in the same loop
    iteration; the listener's callback is then queued, and one yield puts this request behind it.
    """
    await asyncio.sleep(0)


class KeyVerifier:
    """One per process: the cache, its listener, the throttles, the argon2 gate, the lookup pool."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.dsn = to_asyncpg_dsn(database_url)
        self.cache = KeyCache(settings.key_cache_ttl_seconds)
        self.by_key = FailureThrottle(settings.auth_fail_limit, settings.auth_fail_window_seconds)
        self.by_address = FailureThrottle(settings.auth_fail_limit, settings.auth_fail_window_seconds)
        self.argon2 = Argon2Gate(settings.argon2_workers, settings.argon2_max_pending)
        self.throttle_delay = settings.auth_throttle_delay_seconds
        self._mac_key = os.urandom(32)
        self.pool: asyncpg.Pool | None = None
        self.connected = False
        self._closing = False
        self._listener_task: asyncio.Task[None] | None = None
        self._listener_conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        # key id -> window start of its last `api-key.verification.failed` event
        self._failure_reported: dict[str, float] = {}
        self.events: Any = None  # the EventBatcher, set by lifecycle
        self.stats = {"warm": 0, "cold": 0, "argon2": 0, "rejected": 0}
        self._lookups = 0
        self.max_lookups = max(4, settings.hot_path_pool_size * 8)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, pool: asyncpg.Pool, *, wait_listening: float = 5.0) -> None:
        self.pool = pool
        register_local(self.cache.invalidate)
        register_listener(self.live)
        self._listener_task = asyncio.create_task(self._listen_forever(), name="authpi-key-listener")
        try:
            await asyncio.wait_for(self._listening.wait(), timeout=wait_listening)
        except TimeoutError:
            log.warning("key cache listener not connected yet: verifying every request by database")

    async def stop(self) -> None:
        self._closing = True
        unregister_local(self.cache.invalidate)
        unregister_listener(self.live)
        if self._listener_task is not None:
            self._listener_task.cancel()
            try:
                await self._listener_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self.argon2.close()

    async def _listen_forever(self) -> None:
        backoff = 0.2
        while not self._closing:
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10,
                                             server_settings={"application_name": "authpi-key-listener"})
                self._listener_conn = conn
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                # Anything may have changed while we were not listening.
                self.cache.clear()
                self.connected = True
                self._listening.set()
                backoff = 0.2
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=5.0)
                    except TimeoutError:
                        # A silently dead connection delivers nothing: probe it.
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever happened
                if not self._closing:
                    log.warning("key cache listener lost (%s); retrying", type(exc).__name__)
            finally:
                self.connected = False
                self._listening.clear()
                self.cache.clear()
                self._listener_conn = None
                if conn is not None and not conn.is_closed():
                    if self._closing:
                        try:
                            await asyncio.wait_for(conn.close(), timeout=2)
                        except Exception:  # noqa: BLE001
                            conn.terminate()
                    else:
                        conn.terminate()
            if not self._closing:
                if lost.is_set():
                    log.warning("key cache listener connection closed; reconnecting")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def live(self) -> bool:
        """The listener is connected (a lost connection counts at once, before its callback runs)."""
        conn = self._listener_conn
        return self.connected and conn is not None and not conn.is_closed()

    def _on_notify(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        if is_own_echo(pid, payload):
            echo_arrived(pid, payload)
        else:
            self.cache.invalidate(payload)

    # -- verification ----------------------------------------------------------------------------

    def mac(self, secret: str) -> bytes:
        return hmac.new(self._mac_key, secret.encode(), hashlib.sha256).digest()

    async def verify(self, request: Request, key_id: str, secret: str) -> Principal:
        address = client_address(request, self.settings.trust_proxy_headers)
        mac = self.mac(secret)
        await yield_to_invalidations()
        entry = self.warm(key_id, mac)
        if entry is not None:
            return self._accept(request, entry, address, cold=False)
        refusal = self.refuse_early(key_id, secret, address)
        if refusal is not None:
            await self.slow_down(refusal)
            raise refusal
        try:
            return await self._cold(request, key_id, secret, mac, address)
        except TooManyRequests as shed:
            await self.slow_down(shed)
            raise

    def refuse_early(self, key_id: str, secret: str, address: str) -> ApiError | None:
        """Refusals that need neither the database nor argon2 (after a cache miss): malformed ids,
        throttled callers and ids known not to exist."""
        if not looks_like_id(key_id, "key") or len(secret) > MAX_SECRET_LENGTH:
            self._fail_address(address)
            return Unauthorized(INVALID)
        retry = self.by_address.retry_after(address) or self.by_key.retry_after(key_id)
        if retry is not None:
            self.stats["rejected"] += 1
            return TooManyRequests(retry, "Too many failed authentication attempts")
        if self.cache.is_known_missing(key_id):
            self._fail_address(address)
            return Unauthorized(INVALID)
        return None

    async def slow_down(self, refusal: ApiError) -> None:
        """A throttled or shed caller waits before its 429: a client that keeps retrying at once
        (a flood) then takes a small share of the event loop. Sleeping costs no CPU."""
        if isinstance(refusal, TooManyRequests) and self.throttle_delay > 0:
            await asyncio.sleep(self.throttle_delay)

    def warm(self, key_id: str, mac: bytes) -> CachedKey | None:
        """The cached verification of this credential, if it may still be trusted as is."""
        entry = self.cache.get(key_id, mac)
        if entry is None:
            return None
        if (time.monotonic() - entry.cached_at >= self.cache.ttl
                or (entry.valid_until is not None and entry.valid_until <= now_ms())):
            self.cache.drop_entry(entry)
            return None
        if entry.trusted and self.live():
            self.stats["warm"] += 1
            return entry
        # Kept, untrusted: the cold path re-reads the key but may skip argon2 (see `_cold`).
        return None

    def record_verified(self, entry: CachedKey, address: str) -> None:
        """One `api-key.verified` event for this verification, batched."""
        if self.events is not None:
            self.events.add_occurrence(entry.event_template, '{"client_ip": ' + json.dumps(address) + "}")

    async def _cold(self, request: Request, key_id: str, secret: str, mac: bytes, address: str
                    ) -> Principal:
        self.stats["cold"] += 1
        since = self.cache.generation
        trusted = self.connected
        if self._lookups >= self.max_lookups:
            # Unknown ids from many addresses escape the per-address throttle: cap the lookups
            # waiting on the pool rather than let them queue without bound.
            raise TooManyRequests(1, "Too many key verifications in progress; retry shortly")
        self._lookups += 1
        try:
            row = await self._lookup(key_id)
        finally:
            self._lookups -= 1
        if row is None:
            self.cache.remember_missing(key_id)
            self._fail_address(address)
            raise Unauthorized(INVALID)
        if row.problem is not None:
            self._fail_key(row, address, row.problem)
            raise Unauthorized(INVALID)

        now = now_ms()
        valid_until = row.expires_at
        verified_hash: str | None = None
        in_grace = bool(row.previous_secret_hash and row.previous_secret_expires_at
                        and row.previous_secret_expires_at > now)
        # This exact secret already verified against this stored hash (an entry kept while the
        # listener was down, or aged out of trust): the database says the hash is unchanged, so
        # argon2 would only repeat itself.
        known = self.cache.get(key_id, mac)
        if known is not None and known.secret_hash == row.secret_hash:
            verified_hash = row.secret_hash
        elif known is not None and in_grace and known.secret_hash == row.previous_secret_hash:
            verified_hash = row.previous_secret_hash
            grace_end = row.previous_secret_expires_at
            valid_until = grace_end if valid_until is None else min(valid_until, grace_end)
        elif await self._argon2(key_id, mac, row.secret_hash, secret):
            verified_hash = row.secret_hash
        elif (in_grace and row.previous_secret_hash
              and await self._argon2(key_id, mac, row.previous_secret_hash, secret)):
            # The pre-rotation secret, inside its grace period: usable until the grace ends.
            verified_hash = row.previous_secret_hash
            grace_end = row.previous_secret_expires_at
            valid_until = grace_end if valid_until is None else min(valid_until, grace_end)
        if verified_hash is None:
            self._fail_key(row, address, "wrong_secret")
            raise Unauthorized(INVALID)

        principal = Principal(
            type="api_key", account_id=row.account_id, account_level=row.owner_kind == "account",
            scopes=row.scopes, key_id=row.key_id, org_id=row.org_id, issuer_id=row.issuer_id)
        entry = CachedKey(
            key_id=row.key_id, account_id=row.account_id, org_id=row.org_id, issuer_id=row.issuer_id,
            mac=mac, secret_hash=verified_hash, principal=principal, me_body=identity_body(principal),
            networks=parse_networks(row.restrictions.get("ip_allowlist")), valid_until=valid_until,
            cached_at=time.monotonic(), trusted=trusted and self.connected,
            event_template=verified_event_template(principal))
        if self.cache.may_insert(since, row):
            self.cache.put(entry)
        return self._accept(request, entry, address, cold=True)

    async def _argon2(self, key_id: str, mac: bytes, stored_hash: str, secret: str) -> bool:
        self.stats["argon2"] += 1
        return await self.argon2.verify(key_id, mac, stored_hash, secret)

    def _accept(self, request: Request, entry: CachedKey, address: str, *, cold: bool) -> Principal:
        if entry.networks is not None and not address_allowed(entry.networks, address):
            raise Forbidden("The caller's address is not in the API key's IP allowlist")
        state = request.state
        state.api_key_entry = entry
        state.api_key_cold = cold
        state.client_address = address
        return entry.principal

    async def _lookup(self, key_id: str) -> KeyRow | None:
        assert self.pool is not None, "KeyVerifier.start() was not called"
        r = await self.pool.fetchrow(_LOOKUP, key_id)
        if r is None:
            return None
        restrictions = json.loads(r["restrictions"]) if r["restrictions"] else {}
        if not isinstance(restrictions, dict):
            restrictions = {}
        return KeyRow(
            key_id=r["id"], account_id=r["account_id"], owner_kind=r["owner_kind"],
            issuer_id=r["issuer_id"], org_id=r["org_id"], status=r["status"],
            expires_at=r["expires_at"], restrictions=restrictions, secret_hash=r["secret_hash"],
            previous_secret_hash=r["previous_secret_hash"],
            previous_secret_expires_at=r["previous_secret_expires_at"],
            problem=_row_problem(r, now_ms()), scopes=_effective_scopes(r, restrictions))

    # -- failures --------------------------------------------------------------------------------

    def _fail_address(self, address: str) -> None:
        self.by_address.record(address)

    def _fail_key(self, row: KeyRow, address: str, reason: str) -> None:
        self.by_address.record(address)
        count = self.by_key.record(row.key_id)
        self._report_failure(row, address, reason, count)

    def _report_failure(self, row: KeyRow, address: str, reason: str, count: int) -> None:
        """`api-key.verification.failed` in the owning account's trail, aggregated: one event for
        the first failure of a key in a window and one when it reaches the throttle limit, so an
        unauthenticated flood adds at most two rows per existing key per window (unknown ids and
        malformed credentials belong to no account and are only counted)."""
        if self.events is None:
            return
        limit = self.by_key.limit
        if count != 1 and count != limit:
            return
        window = self.settings.auth_fail_window_seconds
        data = {"reason": reason, "client_ip": address, "failures_in_window": count,
                "window_seconds": window, "throttled": count >= limit}
        org = row.owner_kind == "organization"
        self.events.add(
            type="api-key.verification.failed", account_id=row.account_id,
            issuer_id=row.issuer_id if org else None, org_id=row.org_id if org else None,
            subject={"type": "api_key", "id": row.key_id, "org_id": row.org_id,
                     "issuer_id": row.issuer_id},
            data=data, auth={"type": "anonymous", "client_ip": address})


async def verify_basic(request: Request, key_id: str, secret: str) -> Principal:
    """The Basic verifier registered on app.state.verifiers (see app.core.auth)."""
    verifier: KeyVerifier | None = getattr(request.app.state, "key_verifier", None)
    if verifier is None:
        raise RuntimeError("the key verifier is not started (app lifespan not run)")
    return await verifier.verify(request, key_id, secret)
