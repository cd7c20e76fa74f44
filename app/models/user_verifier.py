from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, json_list, json_object


class UserVerifier(Base, Timestamps):
    """A second factor of a user (TOTP). The password lives on the user row itself."""

    __tablename__ = "user_verifiers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"), nullable=False, index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
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
