"""Minting and verifying JWTs: access tokens (RFC 9068, ES256) and ID tokens (RS256).

Verification is strict: the header's `alg` must be the one the `kid`'s key was made for (so `none`
and HS256-with-the-public-key never verify), the issuer must be the one asked, and `exp` is enforced.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwt import JWTClaimsRegistry

from app.core.crypto import hmac_sha256
from app.signing_key.cache import KeySet
from app.signing_key.service import ACCESS_TOKEN_ALG, ID_TOKEN_ALG

ACCESS_TOKEN_TTL = 3600
CLIENT_TOKEN_TTL = 3600
ID_TOKEN_TTL = 3600
REFRESH_TOKEN_TTL = 30 * 86400
CODE_TTL_MS = 60_000
LEEWAY = 30


def new_jti() -> str:
    return secrets.token_urlsafe(18)[:24]


def opaque_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(server_key: str, kind: str, token: str) -> str:
    return hmac_sha256(server_key, f"{kind}:{token}")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# Stateless parameter objects, built once rather than per signature.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _payload(claims: dict[str, Any]) -> bytes:
    """The claims as compact UTF-8 JSON (orjson: several times cheaper than json.dumps here)."""
    return _b64url(orjson.dumps(claims))


@lru_cache(maxsize=4096)
def _at_header(kid: str) -> bytes:
    return _b64url(json.dumps({"alg": ACCESS_TOKEN_ALG, "typ": "at+jwt", "kid": kid},
                              separators=(",", ":")).encode())


def sign_access_token(keys: KeySet, claims: dict[str, Any]) -> str:
    """ES256 (RFC 7518 §3.4) with the cryptography primitive directly: the hot path of /token, where
    joserfc's generic encoder costs about as much as the signature itself. Verified by joserfc."""
    kid, key = keys.signers[ACCESS_TOKEN_ALG]
    signing_input = _at_header(kid) + b"." + _payload(claims)
    r, s = decode_dss_signature(key.private_key.sign(signing_input, _ECDSA_SHA256))
    return (signing_input + b"." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))).decode()


@lru_cache(maxsize=4096)
def _id_header(kid: str, typ: str = "JWT") -> bytes:
    header = {"alg": ID_TOKEN_ALG, "typ": typ, "kid": kid}
    return _b64url(json.dumps(header, separators=(",", ":")).encode())


def sign_id_token(keys: KeySet, claims: dict[str, Any], *, typ: str = "JWT") -> str:
    """RS256 (RFC 7518 §3.3, RSASSA-PKCS1-v1_5 with SHA-256) with the cryptography primitive, as
    for access tokens: joserfc's generic encoder added about a third to the signature's cost on
    every refresh. Verified by joserfc in the tests."""
    kid, key = keys.signers[ID_TOKEN_ALG]
    signing_input = _id_header(kid, typ) + b"." + _payload(claims)
    signature = key.private_key.sign(signing_input, _PKCS1V15, _SHA256)
    return (signing_input + b"." + _b64url(signature)).decode()


class TokenInvalid(Exception):
    pass


def _b64json(part: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        raise TokenInvalid("malformed token") from exc
    if not isinstance(value, dict):
        raise TokenInvalid("malformed token")
    return value


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload without any check: only to find which issuer's keys to verify with."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 8192:
        raise TokenInvalid("not a JWT")
    return _b64json(parts[0]), _b64json(parts[1])


def issuer_id_from_iss(iss: Any, public_url: str) -> str | None:
    if not isinstance(iss, str) or not iss.startswith(public_url + "/"):
        return None
    rest = iss[len(public_url) + 1:]
    return rest if rest.startswith("i_") and "/" not in rest else None


@dataclass
class VerifiedToken:
    header: dict[str, Any]
    claims: dict[str, Any]


def verify_jwt(token: str, keys: KeySet, *, typ: str | None, allow_expired: bool = False) -> VerifiedToken:
    header, _ = peek(token)
    kid = header.get("kid")
    entry = keys.verifiers.get(kid) if isinstance(kid, str) else None
    if entry is None:
        raise TokenInvalid("unknown key")
    alg, key = entry
    if header.get("alg") != alg:
        raise TokenInvalid("unexpected algorithm")
    if typ is not None and str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
        raise TokenInvalid("unexpected token type")
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError) as exc:
        raise TokenInvalid("bad signature") from exc
    claims = dict(decoded.claims)
    registry = _ExpiryNotEnforced if allow_expired else JWTClaimsRegistry
    try:
        # iss is this issuer; exp present (and, unless allowed, not past, with LEEWAY seconds of
        # clock skew); iat and nbf, when present, not in the future.
        registry(leeway=LEEWAY, iss={"essential": True, "value": keys.issuer_url},
                 exp={"essential": True}).validate(claims)
    except ExpiredTokenError as exc:
        raise TokenInvalid("expired") from exc
    except (JoseError, ValueError) as exc:
        raise TokenInvalid(f"invalid claims: {exc}") from exc
    return VerifiedToken(header=dict(decoded.header), claims=claims)


class _ExpiryNotEnforced(JWTClaimsRegistry):
    """For an `id_token_hint` (OIDC RP-initiated logout accepts an expired one): `exp` must still
    be a NumericDate, but may be past."""

    def validate_exp(self, value: object) -> None:
        try:
            super().validate_exp(value)
        except ExpiredTokenError:
            pass
