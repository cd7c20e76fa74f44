"""Prefixed, URL-safe, time-sortable ids: `<prefix>_` + 26 Crockford base32 characters (ULID)."""

from __future__ import annotations

import os
import re
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """Monotonic within a process, so ids minted in one millisecond still sort in creation order."""
    global _last_ms, _last_rand
    with _lock:
        now = int(time.time() * 1000)
        if now <= _last_ms:
            now = _last_ms
            _last_rand += 1
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        _last_ms = now
        rand = _last_rand & ((1 << 80) - 1)
    return f"{prefix}_{_encode(now, 10)}{_encode(rand, 16)}"


ID_PATTERN = re.compile(r"^[a-z]{1,5}_[0-9a-z]{26}$")


def looks_like_id(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and bool(ID_PATTERN.match(value))


def now_ms() -> int:
    return int(time.time() * 1000)
