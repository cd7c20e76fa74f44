"""PKCE (RFC 7636): S256 only. `plain` is refused (OAuth 2.1), for every client of the code flow."""

from __future__ import annotations

import base64
import hashlib
import re

from app.core.crypto import constant_time_equals

# RFC 7636 §4.1: 43-128 characters of [A-Z a-z 0-9 - . _ ~]
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # BASE64URL(SHA-256) without padding


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def challenge_error(challenge: str | None, method: str | None) -> str | None:
    if not challenge:
        return "code_challenge is required (PKCE)"
    if method != "S256":
        return "code_challenge_method must be S256"
    if not CHALLENGE.match(challenge):
        return "code_challenge is malformed"
    return None


def verify(verifier: str | None, challenge: str) -> bool:
    if not verifier or not VERIFIER.match(verifier):
        return False
    return constant_time_equals(s256(verifier), challenge)
