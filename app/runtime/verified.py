"""The cache of verified credentials, one per credential family (API keys, agent secrets).

An entry is a credential this process verified with argon2: (credential id, HMAC of the secret
under a per-process key) -> what the verification produced. It is found again with one HMAC and a
dict lookup. Entries are dropped by the invalidations services publish (app.runtime.invalidation)
for the credential itself and for what it belongs to (`scopes`: invalidation kind -> the entry's
attribute holding that id, the first one naming the credential); the kinds of the topic that do
not concern the family are ignored, unknown kinds drop everything.

Invalidation generations make a cold verification that read the database before a NOTIFY arrived
cache nothing (`may_insert`). When the listener is lost the entries are kept untrusted
(`distrust`): the caller re-reads the credential and may skip argon2 only while the stored hash is
the one the secret verified against.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Generic, Protocol, TypeVar

from app.core.ids import now_ms
from app.runtime.hub import Hub, Message
from app.runtime.invalidation import KINDS, TOPIC

NEGATIVE_TTL = 10.0


class Verified(Protocol):
    mac: bytes
    cached_at: float
    trusted: bool
    # ms after which the entry is unusable (expiry, end of a rotation grace), or None.
    valid_until: int | None


E = TypeVar("E", bound=Verified)


class VerifiedCache(Generic[E]):
    """Verified credentials of this process, invalidated by NOTIFY, bounded in age and size."""

    def __init__(self, ttl: float, scopes: dict[str, str], max_keys: int = 100_000) -> None:
        self.ttl = ttl
        self.scopes = scopes
        self.own_kind, self.id_attr = next(iter(scopes.items()))
        self.max_keys = max_keys
        self._by_id: dict[str, list[E]] = {}
        self.generation = 0
        self._cleared_at = 0
        self._touched: dict[str, int] = {}
        self.negative: dict[str, float] = {}
        self._hub: Hub | None = None

    # -- the hub ---------------------------------------------------------------------------------
    def attach(self, hub: Hub) -> None:
        """Follow the invalidation topic: changes drop entries; a lost listener distrusts them."""
        self._hub = hub
        hub.subscribe(TOPIC, self._on_message, self.distrust)

    def detach(self) -> None:
        if self._hub is not None:
            self._hub.unsubscribe(self._on_message)
            self._hub = None

    def _on_message(self, message: Message) -> None:
        self.invalidate(message.kind, message.ident)

    # -- entries ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def _ident(self, entry: E) -> str:
        return str(getattr(entry, self.id_attr))

    def get(self, ident: str, mac: bytes) -> E | None:
        entries = self._by_id.get(ident)
        if not entries:
            return None
        for entry in entries:
            if hmac.compare_digest(entry.mac, mac):
                return entry
        return None

    def warm(self, ident: str, mac: bytes, *, live: bool) -> E | None:
        """The cached verification of this credential if it may be trusted as is (the listener is
        `live`, the entry is trusted, younger than the ttl and not past `valid_until`)."""
        entry = self.get(ident, mac)
        if entry is None:
            return None
        if entry.valid_until is not None and entry.valid_until <= now_ms():
            self.drop_entry(entry)
            return None
        if not live:
            return None  # kept, untrusted: the caller re-reads the credential
        if time.monotonic() - entry.cached_at >= self.ttl:
            self.drop_entry(entry)
            return None
        return entry if entry.trusted else None

    def put(self, entry: E) -> None:
        ident = self._ident(entry)
        if len(self._by_id) >= self.max_keys and ident not in self._by_id:
            # Evict the oldest inserted credential: dicts keep insertion order.
            self._by_id.pop(next(iter(self._by_id)))
        entries = [e for e in self._by_id.get(ident, []) if e.mac != entry.mac]
        # A credential is presented with at most two secrets at once (during a rotation).
        self._by_id[ident] = [*entries[-1:], entry]

    def drop_entry(self, entry: E) -> None:
        ident = self._ident(entry)
        entries = self._by_id.get(ident)
        if entries and entry in entries:
            entries.remove(entry)
            if not entries:
                del self._by_id[ident]

    def clear(self) -> None:
        self._by_id.clear()
        self._forget_reads()

    def distrust(self) -> None:
        """Keep every entry, untrusted; nothing read before may be cached."""
        for entries in self._by_id.values():
            for entry in entries:
                entry.trusted = False
        self._forget_reads()

    def _forget_reads(self) -> None:
        self.negative.clear()
        self.generation += 1
        self._cleared_at = self.generation
        self._touched.clear()

    def invalidate(self, kind: str, ident: str) -> None:
        self.generation += 1
        if kind in KINDS and kind not in self.scopes:
            return  # not this family's concern
        if kind not in self.scopes or not ident:
            self.clear()
            return
        if len(self._touched) > 50_000:
            self._touched.clear()
            self._cleared_at = self.generation
        self._touched[f"{kind}:{ident}"] = self.generation
        if kind == self.own_kind:
            self._by_id.pop(ident, None)
            self.negative.pop(ident, None)
            return
        attr = self.scopes[kind]
        stale = [k for k, entries in self._by_id.items() if getattr(entries[0], attr) == ident]
        for k in stale:
            del self._by_id[k]

    def may_insert(self, since: int, row: Any) -> bool:
        """True when nothing about `row` (which has the `scopes` attributes) changed since
        generation `since` was read."""
        if since < self._cleared_at:
            return False
        for kind, attr in self.scopes.items():
            if self._touched.get(f"{kind}:{getattr(row, attr)}", 0) > since:
                return False
        return True

    # -- ids known not to exist ------------------------------------------------------------------
    def is_known_missing(self, ident: str) -> bool:
        until = self.negative.get(ident)
        if until is None:
            return False
        if until < time.monotonic():
            del self.negative[ident]
            return False
        return True

    def remember_missing(self, ident: str) -> None:
        if len(self.negative) >= 10_000:
            self.negative.clear()
        self.negative[ident] = time.monotonic() + min(NEGATIVE_TTL, self.ttl)
