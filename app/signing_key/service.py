"""Issuer signing keys: generation, encryption at rest, rotation (a domain concern: the OIDC layer
signs with them, and so can anything else, e.g. back-channel logout from the relay).

Every issuer has two active keys: RS256 (ID tokens: the interoperable default every RP supports) and
ES256 (access tokens: about three times cheaper to sign in Python, published in the same JWKS).
Private keys are stored encrypted under AUTHPI_SECRET_KEY with the key id as associated data, so a
ciphertext cannot be swapped between rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import encrypt
from app.core.ids import new_id, now_ms
from app.events.service import record
from app.models.issuer import Issuer
from app.models.signing_key import SigningKey
from app.runtime.invalidation import publish

ID_TOKEN_ALG = "RS256"
ACCESS_TOKEN_ALG = "ES256"
SUPPORTED_ALGS = (ID_TOKEN_ALG, ACCESS_TOKEN_ALG)
# A retired key stays published this long: longer than any token it signed lives (1 h at most).
RETIRED_PUBLISH_MS = 2 * 3600 * 1000

JoseKey = RSAKey | ECKey


def _generate(alg: str) -> JoseKey:
    if alg == "RS256":
        return RSAKey.generate_key(2048, auto_kid=False)
    if alg == "ES256":
        return ECKey.generate_key("P-256", auto_kid=False)
    raise ValueError(f"unsupported signing algorithm {alg}")


def _public_jwk(key: JoseKey, kid: str, alg: str) -> dict[str, Any]:
    jwk = dict(key.as_dict(private=False))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


async def create_signing_key(session: AsyncSession, server_key: str, issuer: Issuer, alg: str
                             ) -> SigningKey:
    # RSA generation takes ~50-100 ms: keep it off the event loop.
    key = await asyncio.to_thread(_generate, alg)
    kid = new_id("sk")
    pem = key.as_pem(private=True)
    row = SigningKey(
        id=kid, account_id=issuer.account_id, issuer_id=issuer.id, alg=alg,
        public_jwk=_public_jwk(key, kid, alg),
        private_key_encrypted=encrypt(server_key, pem, kid.encode()),
        status="active", created_at=now_ms())
    session.add(row)
    return row


async def create_issuer_keys(session: AsyncSession, server_key: str, issuer: Issuer) -> list[SigningKey]:
    return [await create_signing_key(session, server_key, issuer, alg) for alg in SUPPORTED_ALGS]


async def rotate_signing_keys(session: AsyncSession, issuer: Issuer, server_key: str, auth: Any
                              ) -> list[SigningKey]:
    """New active keys; the old ones retire but stay published (verify-only) until their tokens
    have expired. Every replica reloads the issuer's key set when this commits."""
    now = now_ms()
    await session.execute(
        update(SigningKey)
        .where(SigningKey.issuer_id == issuer.id, SigningKey.account_id == issuer.account_id,
               SigningKey.status == "active")
        .values(status="retired", publish_until=now + RETIRED_PUBLISH_MS, updated_at=now))
    keys = await create_issuer_keys(session, server_key, issuer)
    await session.flush()
    await record(session, type="issuer.signing-key.rotated", account_id=issuer.account_id,
                 issuer_id=issuer.id, subject={"type": "issuer", "id": issuer.id},
                 data={"signing_keys": [{"kid": k.id, "alg": k.alg} for k in keys]}, auth=auth)
    await publish(session, "issuer", issuer.id)
    return keys
