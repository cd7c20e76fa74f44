"""Verifying an agent's `agt_` id and secret, as API keys are verified (app.api_key.verification).

1. Warm cache: (agent id, HMAC of the secret under a per-process key) -> the verified agent. A hit
   costs one HMAC and a dict lookup: no throttle round trip, no argon2, no database. Entries are
   trusted only while the hub's listener is connected and for at most `agent_cache_ttl_seconds`.
2. Throttle: the runtime kit's failure throttle (kind `agent`, per agent and client address).
3. Cold path: one SELECT on the kit's pool (the active agent of the issuer and its active secret
   verifiers), then argon2id through the kit's gate (concurrent checks of one secret share a hash).

The agent service publishes `agent:<id>` in the transaction that suspends, deletes or changes an
agent or removes one of its verifiers; every replica's hub drops the agent's entries before the
next request (`issuer:` and `account:` changes drop theirs too). While the listener is lost,
entries are kept untrusted: each use re-reads the agent, and argon2 is skipped only while the
verifier whose hash the secret matched is still there, unchanged.

A verifier's `usage_count` and `last_used_at` are counted in this process and written in batches
(one UPDATE every `FLUSH_SECONDS`, and at shutdown), so a warm verification writes nothing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.config import Settings
from app.core.ids import looks_like_id, now_ms
from app.runtime.kit import RuntimeKit
from app.runtime.verified import VerifiedCache

log = logging.getLogger("authpi.agent.verification")

KIND = "agent"  # the throttle's credential kind
MAX_SECRET_LENGTH = 256
FLUSH_SECONDS = 1.0

_LOOKUP = """
SELECT a.id, a.account_id, a.issuer_id, a.scopes::text AS scopes, v.id AS verifier_id, v.secret_hash
  FROM agents a
  LEFT JOIN agent_verifiers v
         ON v.agent_id = a.id AND v.account_id = a.account_id AND v.type = 'secret'
        AND v.status = 'active' AND v.secret_hash IS NOT NULL
 WHERE a.id = $1 AND a.issuer_id = $2 AND a.status = 'active'
 ORDER BY v.id DESC
"""

_COUNT_USES = """
UPDATE agent_verifiers v SET usage_count = v.usage_count + u.n,
       last_used_at = greatest(coalesce(v.last_used_at, 0), u.at)
  FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(id, n, at)
 WHERE v.id = u.id
"""


@dataclass(slots=True)
class VerifiedAgent:
    agent_id: str
    account_id: str
    issuer_id: str
    verifier_id: str
    scopes: tuple[str, ...]
    mac: bytes
    secret_hash: str
    cached_at: float
    trusted: bool
    valid_until: int | None = None
    # The batcher's row template of this agent's `machine.token.issued` events (app.oidc.events).
    event_template: tuple[Any, ...] | None = None


@dataclass(slots=True)
class _AgentRow:
    agent_id: str
    account_id: str
    issuer_id: str
    scopes: tuple[str, ...]
    verifiers: list[tuple[str, str]]  # (verifier id, argon2 hash), newest first


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


def agent_cache(ttl: float) -> VerifiedCache[VerifiedAgent]:
    """Agents are dropped by their own, their issuer's and their account's changes."""
    return VerifiedCache(ttl, {"agent": "agent_id", "issuer": "issuer_id", "account": "account_id"})


class AgentAuthenticator:
    """One per process: the verified-agent cache (subscribed to the hub) over the runtime kit."""

    def __init__(self, settings: Settings, kit: RuntimeKit) -> None:
        self.kit = kit
        self.cache: VerifiedCache[VerifiedAgent] = agent_cache(settings.agent_cache_ttl_seconds)
        self.cache.attach(kit.hub)
        self._mac_key = os.urandom(32)
        self.stats = {"warm": 0, "cold": 0, "argon2": 0}
        self._uses: dict[str, tuple[int, int]] = {}  # verifier id -> (uses, last ms)
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="agent-uses")

    async def stop(self) -> None:
        self.cache.detach()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(Exception):
            await self.flush()

    # -- verification ----------------------------------------------------------------------------
    def mac(self, secret: str) -> bytes:
        return hmac.new(self._mac_key, secret.encode(), hashlib.sha256).digest()

    async def verify(self, issuer_id: str, agent_id: str, secret: str, address: str
                     ) -> VerifiedAgent | None:
        """The verified agent, or None (unknown, inactive, no such secret: they look alike).
        Raises `Throttled` when the throttle refuses the caller, and the gate's `Saturated`."""
        if not looks_like_id(agent_id, "agt") or len(secret) > MAX_SECRET_LENGTH:
            return None
        mac = self.mac(secret)
        await asyncio.sleep(0)  # an invalidation read in this loop iteration runs first
        entry = self.cache.warm(agent_id, mac, live=self.kit.hub.live())
        if entry is not None and entry.issuer_id == issuer_id:
            self.stats["warm"] += 1
            self._count_use(entry.verifier_id)
            return entry
        throttle = self.kit.throttle
        retry = await throttle.admit(KIND, agent_id, address)
        if retry is not None:
            raise Throttled(retry)
        verified = await self._cold(issuer_id, agent_id, secret, mac)
        if verified is None:
            await throttle.failed(KIND, agent_id, address)
            return None
        await throttle.succeeded(KIND, agent_id, address)
        self._count_use(verified.verifier_id)
        return verified

    async def _cold(self, issuer_id: str, agent_id: str, secret: str, mac: bytes
                    ) -> VerifiedAgent | None:
        self.stats["cold"] += 1
        since = self.cache.generation
        trusted = self.kit.hub.live()
        row = await self._lookup(agent_id, issuer_id)
        self.kit.hub.touch()
        if row is None or not row.verifiers:
            await self.kit.argon2.verify(None, secret)  # uniform timing
            return None
        match: tuple[str, str] | None = None
        known = self.cache.get(agent_id, mac)
        if known is not None and (known.verifier_id, known.secret_hash) in row.verifiers:
            match = (known.verifier_id, known.secret_hash)  # verified against this very hash
        else:
            for verifier_id, stored in row.verifiers:
                self.stats["argon2"] += 1
                if await self.kit.argon2.verify(stored, secret, share=(KIND, agent_id, verifier_id, mac)):
                    match = (verifier_id, stored)
                    break
        if match is None:
            return None
        entry = VerifiedAgent(agent_id=row.agent_id, account_id=row.account_id,
                              issuer_id=row.issuer_id, verifier_id=match[0], scopes=row.scopes,
                              mac=mac, secret_hash=match[1], cached_at=time.monotonic(),
                              trusted=trusted and self.kit.hub.live())
        if self.cache.may_insert(since, row):
            self.cache.put(entry)
        return entry

    async def _lookup(self, agent_id: str, issuer_id: str) -> _AgentRow | None:
        rows = await self.kit.pool.fetch(_LOOKUP, agent_id, issuer_id)
        if not rows:
            return None
        first = rows[0]
        scopes = json.loads(first["scopes"]) if first["scopes"] else []
        return _AgentRow(agent_id=first["id"], account_id=first["account_id"],
                         issuer_id=first["issuer_id"],
                         scopes=tuple(s for s in scopes if isinstance(s, str)),
                         verifiers=[(r["verifier_id"], r["secret_hash"]) for r in rows
                                    if r["verifier_id"] is not None])

    # -- verifiers' usage ------------------------------------------------------------------------
    def _count_use(self, verifier_id: str) -> None:
        uses, _ = self._uses.get(verifier_id, (0, 0))
        self._uses[verifier_id] = (uses + 1, now_ms())

    async def flush(self) -> None:
        """Write the uses counted since the last flush (one statement)."""
        if not self._uses:
            return
        pending, self._uses = self._uses, {}
        ids = list(pending)
        try:
            await self.kit.pool.execute(_COUNT_USES, ids, [pending[i][0] for i in ids],
                                        [pending[i][1] for i in ids])
        except (asyncpg.PostgresError, OSError):
            for vid, (n, at) in pending.items():  # kept for the next flush
                uses, last = self._uses.get(vid, (0, 0))
                self._uses[vid] = (uses + n, max(at, last))
            raise

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried at the next interval
                log.warning("agent verifier usage not written yet; retrying")
