"""Secrets: generation, argon2id hashing, HMACs under the server key, encryption at rest."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# OWASP's minimum for argon2id (m=19 MiB, t=2, p=1): ~25 ms here. Stored secrets are random and
# long, so the cost guards against a stolen database, not against guessing weak passwords.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)

# A real hash of a random secret: verifying unknown ids against it keeps timing uniform.
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


def generate_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def secret_hint(secret: str) -> str:
    """A short, non-reversible display hint: the last 4 characters."""
    return secret[-4:]


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Constant-time argon2id verification; an absent hash is checked against the dummy."""
    try:
        return _hasher.verify(stored_hash or DUMMY_HASH, secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# An async argon2id check, (stored hash or None, secret) -> matches: the runtime's argon2 gate in the
# server (app.runtime.argon2), a plain thread by default.
SecretCheck = Callable[[str | None, str], Awaitable[bool]]


async def check_in_thread(stored_hash: str | None, secret: str) -> bool:
    return await asyncio.to_thread(verify_secret, stored_hash, secret)


def hmac_sha256(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def _aead_key(server_key: str) -> bytes:
    return hashlib.sha256(b"authpi-at-rest:" + server_key.encode()).digest()


def encrypt(server_key: str, plaintext: bytes, associated: bytes = b"") -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_aead_key(server_key)).encrypt(nonce, plaintext, associated)
    return base64.b64encode(nonce + sealed).decode()


def decrypt(server_key: str, token: str, associated: bytes = b"") -> bytes:
    raw = base64.b64decode(token)
    return AESGCM(_aead_key(server_key)).decrypt(raw[:12], raw[12:], associated)
