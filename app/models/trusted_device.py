from __future__ import annotations

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UserOwned


class TrustedDevice(Base, UserOwned, Timestamps):
    """A device a user chose to trust (skips the second factor until it expires)."""

    __tablename__ = "user_trusted_devices"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    fingerprint: Mapped[str] = mapped_column(String(256), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    trusted_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # HMAC of the device cookie's secret. Only the hosted "trust this device" sets it; a device
    # created or edited through the admin API has none and never matches a cookie.
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
