"""User verifiers: the password (kept on the user row) and TOTP second factors with backup codes.

TOTP (RFC 6238) comes from `cryptography`; keys are encrypted at rest under the server key, backup
codes are kept only as HMACs, and an accepted time step is never accepted again (no replay).
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import constant_time_equals, decrypt, encrypt, hmac_sha256
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.responses import with_fields
from app.core.rows import one_or_404
from app.events.service import record
from app.models.user import User
from app.models.user_verifier import UserVerifier
from app.organization.service import touch
from app.user.schemas import VerifierOut

DIGITS = 6
PERIOD = 30
# One step either side absorbs clock drift between the server and the authenticator app.
DRIFT_STEPS = 1
ENROLLMENT_TTL_MS = 10 * 60 * 1000
BACKUP_CODE_COUNT = 10
MAX_TOTP_PER_USER = 5
# Warn (user.mfa.backup-codes.low) when this few unused backup codes remain.
BACKUP_CODES_LOW = 2


def _totp(key: bytes) -> TOTP:
    return TOTP(key, DIGITS, SHA1(), PERIOD, enforce_key_length=False)


def _key(server_key: str, v: UserVerifier) -> bytes:
    return decrypt(server_key, v.secret_encrypted, v.id.encode())


def _backup_hash(server_key: str, v: UserVerifier, code: str) -> str:
    return hmac_sha256(server_key, f"backup:{v.id}:{code.replace('-', '').strip().lower()}")


def _new_backup_codes(server_key: str, v: UserVerifier) -> list[str]:
    codes = []
    for _ in range(BACKUP_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(5)).decode().lower()  # 8 characters
        codes.append(f"{raw[:4]}-{raw[4:]}")
    v.backup_codes = [_backup_hash(server_key, v, c) for c in codes]
    return codes


def verifier_out(v: UserVerifier) -> VerifierOut:
    # A passkey's public key stays on the server; the rest of `credential` describes the authenticator.
    credential = {k: val for k, val in (v.credential or {}).items() if k != "public_key"}
    return VerifierOut.model_validate(with_fields(v, backup_codes_remaining=len(v.backup_codes or []),
                                                  credential=credential))



async def _event(session: AsyncSession, user: User, type: str, auth: Principal,
                 v: UserVerifier, data: dict[str, Any] | None = None) -> None:
    await record(session, type=type, account_id=user.account_id, issuer_id=user.issuer_id,
                 user_id=user.id, subject={"type": "verifier", "id": v.id, "user_id": user.id},
                 data={"verifier_type": v.type, **(data or {})}, auth=auth)


async def list_totp(session: AsyncSession, user: User) -> list[UserVerifier]:
    """Completed TOTP verifiers (pending enrollments are not verifiers yet)."""
    rows = await session.scalars(select(UserVerifier).where(
        UserVerifier.user_id == user.id, UserVerifier.account_id == user.account_id,
        UserVerifier.status != "pending").order_by(UserVerifier.id))
    return list(rows.all())


async def get_totp(session: AsyncSession, user: User, verifier_id: str, *,
                   include_pending: bool = False, for_update: bool = False) -> UserVerifier:
    stmt = select(UserVerifier).where(UserVerifier.id == verifier_id, UserVerifier.user_id == user.id,
                                      UserVerifier.account_id == user.account_id)
    if not include_pending:
        stmt = stmt.where(UserVerifier.status != "pending")
    return await one_or_404(session, stmt, "verifier", for_update=for_update)


async def start_totp(session: AsyncSession, user: User, *, name: str | None, issuer_name: str,
                     server_key: str, auth: Principal) -> tuple[UserVerifier, dict[str, Any]]:
    """A pending TOTP verifier and its enrollment data (the key is shown here only)."""
    active = await session.scalars(select(UserVerifier.id).where(
        UserVerifier.user_id == user.id, UserVerifier.status != "pending"))
    if len(active.all()) >= MAX_TOTP_PER_USER:
        raise Conflict(f"A user has at most {MAX_TOTP_PER_USER} TOTP verifiers")
    key = os.urandom(20)
    now = now_ms()
    v = UserVerifier(id=new_id("vrf"), account_id=user.account_id, issuer_id=user.issuer_id,
                     user_id=user.id, type="totp", name=name, status="pending",
                     credential={"algorithm": "SHA1", "digits": DIGITS, "period": PERIOD},
                     backup_codes=[], usage_count=0, created_at=now,
                     enrollment_expires_at=now + ENROLLMENT_TTL_MS)
    v.secret_encrypted = encrypt(server_key, key, v.id.encode())
    session.add(v)
    await session.flush()
    await _event(session, user, "user.verifier.created", auth, v, {"status": "pending"})
    return v, enrollment_view(server_key, v, user.username, issuer_name)


def enrollment_view(server_key: str, v: UserVerifier, username: str, issuer_name: str) -> dict[str, Any]:
    """The enrollment data of a pending TOTP verifier (only while it is pending)."""
    if v.status != "pending":
        raise Conflict("This enrollment is already complete")
    key = _key(server_key, v)
    return {
        "enrollment_id": v.id,
        "secret": base64.b32encode(key).decode().rstrip("="),
        "provisioning_uri": _totp(key).get_provisioning_uri(username, issuer_name),
        "expires_at": v.enrollment_expires_at,
    }


def _match_totp(server_key: str, v: UserVerifier, code: str, at: float) -> int | None:
    """The time step the code belongs to, if it is valid and newer than the last one used."""
    if not (len(code) == DIGITS and code.isdigit()):
        return None
    totp = _totp(_key(server_key, v))
    step_now = int(at) // PERIOD
    found = None
    for step in range(step_now - DRIFT_STEPS, step_now + DRIFT_STEPS + 1):
        # Compare every candidate, so timing does not tell which window matched.
        if constant_time_equals(totp.generate(step * PERIOD), code.encode()):
            found = step
    if found is None or (v.last_used_step is not None and found <= v.last_used_step):
        return None
    return found


async def complete_totp(session: AsyncSession, user: User, *, enrollment_id: str, code: str,
                        server_key: str, auth: Principal) -> dict[str, Any]:
    v = await get_totp(session, user, enrollment_id, include_pending=True, for_update=True)
    if v.status != "pending":
        raise Conflict("This enrollment is already complete")
    if (v.enrollment_expires_at or 0) <= now_ms():
        return {"success": False, "error": "enrollment_expired"}
    step = _match_totp(server_key, v, code, time.time())
    if step is None:
        await _event(session, user, "user.mfa.verification.failed", auth, v, {"stage": "enrollment"})
        return {"success": False, "error": "invalid_code"}
    codes = _new_backup_codes(server_key, v)
    v.status = "active"
    v.last_used_step = step
    v.enrollment_expires_at = None
    touch(v)
    await session.flush()
    await _event(session, user, "user.mfa.factor-created", auth, v)
    return {"success": True, "verifier_id": v.id, "backup_codes": codes}


async def verify_code(session: AsyncSession, user: User, v: UserVerifier, *, code: str,
                      server_key: str, auth: Principal) -> dict[str, Any]:
    """A TOTP code or an unused backup code; each is accepted once."""
    if v.type != "totp":
        raise ValidationFailed("Only TOTP verifiers are checked with a code", field="verifier_id")
    if v.status != "active":
        return {"success": False, "error": "verifier_disabled"}
    code = code.strip()
    step = _match_totp(server_key, v, code, time.time())
    used_backup = False
    if step is None:
        wanted = _backup_hash(server_key, v, code)
        remaining = [h for h in v.backup_codes if not constant_time_equals(h, wanted)]
        used_backup = len(remaining) < len(v.backup_codes)
        if used_backup:
            v.backup_codes = remaining
    if step is None and not used_backup:
        await _event(session, user, "user.mfa.verification.failed", auth, v)
        return {"success": False, "error": "invalid_code"}
    if step is not None:
        v.last_used_step = step
    v.usage_count += 1
    v.last_used_at = now_ms()
    touch(v)
    await session.flush()
    await _event(session, user, "user.mfa.verification.succeeded", auth, v,
                 {"method": "backup_code" if used_backup else "totp"})
    out: dict[str, Any] = {"success": True}
    if used_backup:
        out["remaining"] = len(v.backup_codes)
        if len(v.backup_codes) <= BACKUP_CODES_LOW:
            await _event(session, user, "user.mfa.backup-codes.low", auth, v,
                         {"remaining": len(v.backup_codes)})
    return out


async def regenerate_codes(session: AsyncSession, user: User, v: UserVerifier, *, server_key: str,
                           auth: Principal) -> list[str]:
    if v.status != "active":
        raise Conflict("Backup codes belong to an active verifier")
    codes = _new_backup_codes(server_key, v)
    touch(v)
    await session.flush()
    await _event(session, user, "user.mfa.backup-codes.regenerated", auth, v)
    return codes


async def update_totp(session: AsyncSession, user: User, v: UserVerifier, changes: dict[str, Any],
                      auth: Principal) -> UserVerifier:
    if "name" in changes:
        v.name = changes["name"]
    if changes.get("status"):
        v.status = changes["status"]
    touch(v)
    await session.flush()
    await _event(session, user, "user.verifier.updated", auth, v, {"changed": sorted(changes)})
    return v


async def delete_totp(session: AsyncSession, user: User, v: UserVerifier, auth: Principal) -> None:
    await session.delete(v)
    await session.flush()
    await _event(session, user, "user.mfa.factor-deleted", auth, v)

