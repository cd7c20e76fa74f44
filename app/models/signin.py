"""Hosted sign-in state kept in PostgreSQL, so it holds across replicas: a sign-in waiting for its
second factor (or for a passkey ceremony), and the per-user delay after wrong second-factor codes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IssuerOwned, json_list, json_object


class PendingSignin(Base, IssuerOwned):
    """A sign-in between its steps (id `psi_...`). Its cookie (per issuer path) is stored only as an
    HMAC."""

    __tablename__ = "pending_signins"

    # None while a usernameless passkey ceremony has not said who the user is.
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    cookie_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # second_factor | enrol | passkey
    stage: Mapped[str] = mapped_column(String(32), nullable=False)
    # RFC 8176 methods proven so far (e.g. ["pwd"]).
    methods: Mapped[list[Any]] = json_list()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The signed authorization request to resume afterwards.
    return_to: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # A WebAuthn challenge (base64url) while a ceremony is under way; single use.
    challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    data: Mapped[dict[str, Any]] = json_object()
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SecondFactorThrottle(Base):
    """Wrong second-factor codes of one user, from any address: each failure past the free ones
    doubles the wait before the next try is even checked."""

    __tablename__ = "second_factor_throttle"

    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(String(40), nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_allowed_at: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_failure_at: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
