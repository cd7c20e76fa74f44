"""Verifying `key_id:secret` (HTTP Basic) into a Principal: the hot path of `GET /v1/me`.

Order of work, cheapest first, so that bad credentials cost little and never delay good ones:

1. Shape: a key id that cannot exist is refused (401) before anything else.
2. Warm cache: (key id, HMAC of the secret under a per-process key) -> the verified key, its
   Principal and its `/v1/me` body. A hit costs one HMAC and a dict lookup: no argon2, no database.
   Entries are trusted only while the invalidation listener is connected; their age is bounded by
   `key_cache_ttl_seconds`; expiry is checked locally from the cached `expires_at`.
3. Throttle: the runtime kit's shared failure throttle (app.runtime.throttle: per key id and
   address, per address, progressive delay per key id). A refused caller gets 429 before
   argon2 or the key's row, and a warm hit never asks it, so a valid cached key keeps working
   while someone hammers its id with wrong secrets, and a holder from an address that has not
   been failing is never refused for someone else's failures.
4. Cold path: one indexed SELECT through a plain asyncpg pool (key, organization, issuer and
   account status). Unknown ids and unusable keys (blocked, revoked, expired, inactive
   organization) are refused here with a generic 401, without hashing. Otherwise argon2id runs in
   a bounded thread pool; concurrent verifications of the same credential share one hash; when
   too much argon2 work is queued the excess is shed at once with 429.

Revocation is pushed, not polled: every change to a key, organization or issuer is published by
its service in its transaction (app.runtime.invalidation); the process's hub (one LISTEN
connection) delivers it here and the affected entries are dropped. When the listener is lost,
entries are kept only as untrusted memos: every request re-reads the key from the database, and
argon2 is skipped only while the stored hash is the one the secret verified against. While the
database itself is unreachable, such a memo answers alone for at most `outage_grace_seconds`
after the last successful contact (`during_outage`).

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
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import Request

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import ApiError, Forbidden, TooManyRequests, Unauthorized
from app.core.ids import looks_like_id, now_ms
from app.core.scopes import within
from app.events.batcher import event_row
from app.runtime.address import address_allowed, parse_networks
from app.runtime.argon2 import Saturated
from app.runtime.hub import is_unreachable
from app.runtime.kit import RuntimeKit
from app.runtime.verified import VerifiedCache

log = logging.getLogger("authpi.api_key.verification")

INVALID = "Invalid API key"
MAX_SECRET_LENGTH = 256
KIND = "api_key"  # the throttle's credential kind

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


def key_cache(ttl: float) -> VerifiedCache[CachedKey]:
    """Keys are dropped by their own, their organization's, issuer's and account's changes."""
    return VerifiedCache(ttl, {"key": "key_id", "org": "org_id", "issuer": "issuer_id",
                               "account": "account_id"})


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


def _issuer_limit(row: KeyRow) -> tuple[str, ...] | None:
    """An account key's `restrictions.issuer_ids` (a delegated admin), carried by its Principal and
    so by its cache entry; a change to the key is published and drops the entry."""
    if row.owner_kind != "account" or "issuer_ids" not in row.restrictions:
        return None
    ids = row.restrictions["issuer_ids"]
    # A malformed stored value limits the key to nothing rather than to the whole account.
    return tuple(i for i in ids if isinstance(i, str)) if isinstance(ids, list) else ()


def verified_event_template(principal: Principal) -> tuple[Any, ...]:
    org = not principal.account_level
    return event_row(
        type="api-key.verified", account_id=principal.account_id,
        issuer_id=principal.issuer_id if org else None, org_id=principal.org_id if org else None,
        subject={"type": "api_key", "id": principal.key_id, "org_id": principal.org_id,
                 "issuer_id": principal.issuer_id},
        data={}, auth=principal.event_auth(), event_id="evt_template", timestamp=0)


def caller_identity(principal: Principal) -> dict[str, object]:
    """The body of `GET /v1/me` for any principal."""
    identity: dict[str, object] = {"type": principal.type, "accounts": [], "organizations": []}
    if principal.key_id:
        identity["key_id"] = principal.key_id
    if principal.user_id:
        identity["user_id"] = principal.user_id
    if principal.account_level:
        account: dict[str, object] = {"account_id": principal.account_id, "org_id": principal.org_id,
                                      "scopes": list(principal.scopes)}
        if principal.issuer_ids is not None:
            account["issuer_ids"] = list(principal.issuer_ids)
        identity["accounts"] = [account]
    else:
        identity["issuer_id"] = principal.issuer_id
        # A user token may carry several organizations (Principal.extra["organizations"]).
        identity["organizations"] = principal.extra.get("organizations") or (
            [{"org_id": principal.org_id, "scopes": list(principal.scopes)}] if principal.org_id else [])
    return identity


def identity_body(principal: Principal) -> bytes:
    return json.dumps({"data": caller_identity(principal)}, separators=(",", ":")).encode()


async def yield_to_invalidations() -> None:
    """Let an invalidation that reached the listener in this loop iteration run before a cache read.

    A NOTIFY and the request it must govern can be read from their sockets in the same loop
    iteration; the listener's callback is then queued, and one yield puts this request behind it.
    """
    await asyncio.sleep(0)


class KeyVerifier:
    """One per process: the key cache (subscribed to the hub), over the runtime kit's throttle,
    argon2 gate, client address and lookup pool."""

    def __init__(self, settings: Settings, kit: RuntimeKit) -> None:
        self.settings = settings
        self.kit = kit
        self.hub = kit.hub
        self.cache: VerifiedCache[CachedKey] = key_cache(settings.key_cache_ttl_seconds)
        self.throttle = kit.throttle
        self.argon2 = kit.argon2
        self.address = kit.address
        self.pool = kit.pool
        self.throttle_delay = settings.auth_throttle_delay_seconds
        self.outage_grace = settings.outage_grace_seconds
        self._mac_key = os.urandom(32)
        self.events: Any = kit.events  # the metered event batcher
        self.stats = {"warm": 0, "cold": 0, "argon2": 0, "rejected": 0, "outage": 0}
        self._lookups = 0
        self.max_lookups = max(4, settings.hot_path_pool_size * 8)
        # Changes drop entries; a lost listener keeps them as untrusted memos (each use re-reads
        # the key; argon2 is skipped while the stored hash is unchanged, and they answer alone
        # while the database itself is unreachable).
        self.cache.attach(self.hub)

    def close(self) -> None:
        self.cache.detach()

    def live(self) -> bool:
        """The hub's listener is connected: cached entries may be trusted as they are."""
        return self.hub.live()

    # -- verification ----------------------------------------------------------------------------

    def mac(self, secret: str) -> bytes:
        return hmac.new(self._mac_key, secret.encode(), hashlib.sha256).digest()

    async def verify(self, request: Request, key_id: str, secret: str) -> Principal:
        address = self.address.of_scope(request.scope)
        mac = self.mac(secret)
        await yield_to_invalidations()
        entry = self.warm(key_id, mac)
        if entry is not None:
            return self._accept(request, entry, address, cold=False)
        try:
            refusal = await self.refuse_early(key_id, secret, address)
            if refusal is not None:
                await self.slow_down(refusal)
                raise refusal
            return await self._cold(request, key_id, secret, mac, address)
        except TooManyRequests as shed:
            await self.slow_down(shed)
            raise
        except Exception as exc:
            kept = self.during_outage(exc, key_id, mac)
            if kept is None:
                raise
            return self._accept(request, kept, address, cold=False)

    def during_outage(self, exc: BaseException, key_id: str, mac: bytes) -> CachedKey | None:
        """While the database itself is unreachable, a credential this process verified keeps
        working for `outage_grace_seconds` after the last successful contact with the database
        (its `api-key.verified` events wait in the batcher's bounded queue)."""
        if not is_unreachable(exc) or self.hub.contact_age() > self.outage_grace:
            return None
        entry = self.cache.get(key_id, mac)
        if entry is None or (entry.valid_until is not None and entry.valid_until <= now_ms()):
            return None
        self.stats["outage"] += 1
        return entry

    async def refuse_early(self, key_id: str, secret: str, address: str) -> ApiError | None:
        """Refusals that need neither the key's row nor argon2 (after a cache miss): malformed
        ids, throttled callers and ids known not to exist."""
        if not looks_like_id(key_id, "key") or len(secret) > MAX_SECRET_LENGTH:
            await self.throttle.failed(KIND, None, address)
            return Unauthorized(INVALID)
        known_missing = self.cache.is_known_missing(key_id)
        retry = await self.throttle.admit(KIND, None if known_missing else key_id, address)
        if retry is not None:
            self.stats["rejected"] += 1
            return TooManyRequests(retry, "Too many failed authentication attempts")
        if known_missing:
            await self.throttle.failed(KIND, None, address)
            return Unauthorized(INVALID)
        return None

    async def slow_down(self, refusal: ApiError) -> None:
        """A throttled or shed caller waits before its 429: a client that keeps retrying at once
        (a flood) then takes a small share of the event loop. Sleeping costs no CPU."""
        if isinstance(refusal, TooManyRequests) and self.throttle_delay > 0:
            await asyncio.sleep(self.throttle_delay)

    def warm(self, key_id: str, mac: bytes) -> CachedKey | None:
        """The cached verification of this credential, if it may still be trusted as is."""
        # Untrusted entries are re-read by the cold path (see `_cold`, `during_outage`).
        entry = self.cache.warm(key_id, mac, live=self.live())
        if entry is not None:
            self.stats["warm"] += 1
        return entry

    def record_verified(self, entry: CachedKey, address: str) -> None:
        """One `api-key.verified` event for this verification, batched."""
        if self.events is not None:
            self.events.add_occurrence(entry.event_template, '{"client_ip": ' + json.dumps(address) + "}")

    async def _cold(self, request: Request, key_id: str, secret: str, mac: bytes, address: str
                    ) -> Principal:
        self.stats["cold"] += 1
        since = self.cache.generation
        trusted = self.live()
        if self._lookups >= self.max_lookups:
            # Unknown ids from many addresses escape the per-address throttle: cap the lookups
            # waiting on the pool rather than let them queue without bound.
            raise TooManyRequests(1, "Too many key verifications in progress; retry shortly")
        self._lookups += 1
        try:
            row = await self._lookup(key_id)
        finally:
            self._lookups -= 1
        self.hub.touch()
        if row is None:
            self.cache.remember_missing(key_id)
            await self.throttle.failed(KIND, None, address)
            raise Unauthorized(INVALID)
        if row.problem is not None:
            await self._fail_key(row, address, row.problem)
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
            await self._fail_key(row, address, "wrong_secret")
            raise Unauthorized(INVALID)
        await self.throttle.succeeded(KIND, key_id, address)

        principal = Principal(
            type="api_key", account_id=row.account_id, account_level=row.owner_kind == "account",
            scopes=row.scopes, key_id=row.key_id, org_id=row.org_id, issuer_id=row.issuer_id,
            issuer_ids=_issuer_limit(row))
        entry = CachedKey(
            key_id=row.key_id, account_id=row.account_id, org_id=row.org_id, issuer_id=row.issuer_id,
            mac=mac, secret_hash=verified_hash, principal=principal, me_body=identity_body(principal),
            networks=parse_networks(row.restrictions.get("ip_allowlist")) or None, valid_until=valid_until,
            cached_at=time.monotonic(), trusted=trusted and self.live(),
            event_template=verified_event_template(principal))
        if self.cache.may_insert(since, row):
            self.cache.put(entry)
        return self._accept(request, entry, address, cold=True)

    async def _argon2(self, key_id: str, mac: bytes, stored_hash: str, secret: str) -> bool:
        self.stats["argon2"] += 1
        try:
            return await self.argon2.verify(stored_hash, secret, share=(key_id, mac))
        except Saturated as exc:
            raise TooManyRequests(exc.retry_after,
                                  "Too many key verifications in progress; retry shortly") from exc

    def _accept(self, request: Request, entry: CachedKey, address: str, *, cold: bool) -> Principal:
        if entry.networks is not None and not address_allowed(entry.networks, address):
            raise Forbidden("The caller's address is not in the API key's IP allowlist")
        state = request.state
        state.api_key_entry = entry
        state.api_key_cold = cold
        state.client_address = address
        return entry.principal

    async def _lookup(self, key_id: str) -> KeyRow | None:
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

    async def _fail_key(self, row: KeyRow, address: str, reason: str) -> None:
        count = await self.throttle.failed(KIND, row.key_id, address)
        self._report_failure(row, address, reason, count)

    def _report_failure(self, row: KeyRow, address: str, reason: str, count: int) -> None:
        """`api-key.verification.failed` in the owning account's trail, aggregated: one event for
        the first failure of a key in a window and one when it reaches the throttle limit, so an
        unauthenticated flood adds at most two rows per existing key per window (unknown ids and
        malformed credentials belong to no account and are only counted)."""
        if self.events is None:
            return
        limit = self.throttle.limit
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
