from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, json_object


class SigningKey(Base, Timestamps):
    """An issuer's JWS key. The private part is encrypted under AUTHPI_SECRET_KEY."""

    __tablename__ = "signing_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the JWK `kid`
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"), nullable=False,
                                           index=True)
    alg: Mapped[str] = mapped_column(String(16), nullable=False)
    public_jwk: Mapped[dict[str, Any]] = json_object()
    private_key_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # active: signs; retired: verify-only, published in JWKS until `publish_until` (ms).
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    publish_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
