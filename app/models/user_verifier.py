from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UserOwned, json_list, json_object


class UserVerifier(Base, UserOwned, Timestamps):
    """A second factor of a user: TOTP, or a passkey (`type` passkey, no secret: the server keeps
    only the public key). The password lives on the user row itself."""

    __tablename__ = "user_verifiers"
    __table_args__ = (Index("ix_user_verifiers_issuer_id_credential_id", "issuer_id", "credential_id"),)

    type: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # pending (enrollment not completed) | active | disabled
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="pending")
    # The TOTP key, AES-GCM under the server key (associated data: the verifier id).
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # algorithm, digits, period
    credential: Mapped[dict[str, Any]] = json_object()
    # HMAC-SHA256 of each unused backup code under the server key; a used code is removed.
    backup_codes: Mapped[list[Any]] = json_list()
    # The last accepted TOTP time step: a code is never accepted twice.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    usage_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    enrollment_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Passkeys: the WebAuthn credential id (base64url), looked up within the issuer, and the
    # authenticator's signature counter (clone detection). The public key is in `credential`.
    credential_id: Mapped[str | None] = mapped_column(String(1400), nullable=True)
    sign_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
