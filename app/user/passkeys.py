"""Passkeys (WebAuthn Level 2/3 through the `webauthn` package) as user verifiers of type `passkey`.

The server keeps the credential id, the public key and the signature counter; nothing private.
The RP ID is the public host (shared by every issuer), so credentials are looked up within the
issuer. A counter that does not move forward (both non-zero) means a cloned authenticator: the
sign-in is refused and the refusal recorded.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app.core.auth import Principal
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import new_id, now_ms
from app.events.service import record
from app.models.user import User
from app.models.user_verifier import UserVerifier
from app.organization.service import touch

MAX_PASSKEYS_PER_USER = 10
TIMEOUT_MS = 120_000


class PasskeyRefused(Exception):
    """The assertion does not sign the user in; `reason` goes to the event trail."""

    def __init__(self, reason: str, verifier: UserVerifier | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.verifier = verifier


def rp_id_for(public_url: str) -> str | None:
    """The issuer's public host, or None when it is an IP literal (WebAuthn refuses those)."""
    host = urlsplit(public_url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        return host or None


def origin_of(public_url: str) -> str:
    parts = urlsplit(public_url)
    return f"{parts.scheme}://{parts.netloc}"


def _credential_id(credential: str) -> str:
    try:
        data = json.loads(credential)
    except ValueError as exc:
        raise PasskeyRefused("malformed_credential") from exc
    raw = data.get("rawId") or data.get("id") if isinstance(data, dict) else None
    if not isinstance(raw, str) or not 1 <= len(raw) <= 1400:
        raise PasskeyRefused("malformed_credential")
    return raw


async def user_passkeys(session: AsyncSession, user: User) -> list[UserVerifier]:
    rows = await session.scalars(select(UserVerifier).where(
        UserVerifier.user_id == user.id, UserVerifier.account_id == user.account_id,
        UserVerifier.issuer_id == user.issuer_id, UserVerifier.type == "passkey",
        UserVerifier.status == "active").order_by(UserVerifier.id))
    return list(rows.all())


def registration_options(rp_id: str, rp_name: str, user: User, existing: list[UserVerifier]
                         ) -> tuple[str, str]:
    """(options JSON for navigator.credentials.create, the challenge, base64url)."""
    options = webauthn.generate_registration_options(
        rp_id=rp_id, rp_name=rp_name, user_id=user.id.encode(), user_name=user.username,
        user_display_name=user.username, timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(v.credential_id))
                             for v in existing if v.credential_id])
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


def authentication_options(rp_id: str, allow: list[UserVerifier] | None) -> tuple[str, str]:
    """Usernameless (discoverable credentials) when `allow` is None."""
    options = webauthn.generate_authentication_options(
        rp_id=rp_id, timeout=TIMEOUT_MS, user_verification=UserVerificationRequirement.REQUIRED,
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(v.credential_id))
                           for v in allow or [] if v.credential_id])
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


async def register(session: AsyncSession, user: User, *, credential: str, challenge: str, rp_id: str,
                   origin: str, auth: Principal | dict[str, Any], name: str | None = None) -> UserVerifier:
    existing = await user_passkeys(session, user)
    if len(existing) >= MAX_PASSKEYS_PER_USER:
        raise Conflict(f"A user has at most {MAX_PASSKEYS_PER_USER} passkeys")
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=base64url_to_bytes(challenge), expected_rp_id=rp_id,
            expected_origin=origin, require_user_verification=True)
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("The passkey could not be verified", field="credential") from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    taken = await session.scalar(select(UserVerifier.id).where(
        UserVerifier.issuer_id == user.issuer_id, UserVerifier.account_id == user.account_id,
        UserVerifier.credential_id == credential_id))
    if taken:
        raise Conflict("This passkey is already registered")
    now = now_ms()
    device_bound = verified.credential_device_type == CredentialDeviceType.SINGLE_DEVICE
    v = UserVerifier(id=new_id("vrf"), account_id=user.account_id, issuer_id=user.issuer_id, user_id=user.id,
                     type="passkey", name=name or "Passkey", status="active", secret_encrypted="",
                     credential={"public_key": bytes_to_base64url(verified.credential_public_key),
                                 "aaguid": verified.aaguid, "device_bound": device_bound,
                                 "backed_up": verified.credential_backed_up, "rp_id": rp_id},
                     backup_codes=[], usage_count=0, created_at=now, credential_id=credential_id,
                     sign_count=verified.sign_count)
    session.add(v)
    await session.flush()
    for type in ("user.verifier.created", "user.mfa.factor-created"):
        await record(session, type=type, account_id=user.account_id, issuer_id=user.issuer_id,
                     user_id=user.id,
                     subject={"type": "verifier", "id": v.id, "user_id": user.id},
                     data={"verifier_type": "passkey", "device_bound": device_bound}, auth=auth)
    return v


async def authenticate(session: AsyncSession, *, account_id: str, issuer_id: str, credential: str,
                       challenge: str, rp_id: str, origin: str, user_id: str | None
                       ) -> tuple[UserVerifier, list[str]]:
    """The passkey's verifier and the RFC 8176 methods it proved, or PasskeyRefused."""
    credential_id = _credential_id(credential)
    v = await session.scalar(select(UserVerifier).where(
        UserVerifier.issuer_id == issuer_id, UserVerifier.account_id == account_id,
        UserVerifier.credential_id == credential_id, UserVerifier.type == "passkey"
    ).with_for_update())
    if v is None or v.status != "active" or (user_id is not None and v.user_id != user_id):
        raise PasskeyRefused("unknown_credential")
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=base64url_to_bytes(challenge), expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=base64url_to_bytes(v.credential["public_key"]),
            # The counter is checked below, so a regression is told apart from a bad signature.
            credential_current_sign_count=0, require_user_verification=True)
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        raise PasskeyRefused("invalid_assertion", v) from exc
    stored = v.sign_count or 0
    if (stored or verified.new_sign_count) and verified.new_sign_count <= stored:
        raise PasskeyRefused("sign_count_regressed", v)
    v.sign_count = verified.new_sign_count
    v.usage_count += 1
    v.last_used_at = now_ms()
    touch(v)
    await session.flush()
    key = "hwk" if v.credential.get("device_bound") else "swk"
    return v, [key, "user"]
