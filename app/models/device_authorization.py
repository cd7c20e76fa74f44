from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, json_list


class DeviceAuthorization(Base):
    """A device authorization request (RFC 8628): the device polls with its device code (stored as
    an HMAC) while the user enters the short user code (also an HMAC) on the hosted page."""

    __tablename__ = "device_authorizations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"), nullable=False, index=True)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    device_code_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    # pending -> approved | denied; approved -> used (tokens issued once)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    auth_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amr: Mapped[list[Any]] = json_list()
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    interval: Mapped[int] = mapped_column(Integer, nullable=False)
    last_polled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
