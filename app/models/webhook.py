from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, StatusFields, Timestamps, json_list, json_object


class Webhook(Timestamps, StatusFields, Base):
    """A tenant's webhook endpoint. Deliveries fan out to it from the events trigger (migration 0400)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), ForeignKey("accounts.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    events: Mapped[list[Any]] = json_list()
    subjects: Mapped[list[Any]] = json_list()
    retry: Mapped[dict[str, Any]] = json_object()
    circuit_breaker: Mapped[dict[str, Any]] = json_object()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
    # The signing secret must be recoverable to sign, so it is encrypted (AES-GCM), not hashed.
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # After a rotation the old secret keeps signing alongside the new one until this time.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    secret_rotated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Circuit breaker state, kept by the relay (does not bump updated_at, so ETags stay stable).
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    failing_since: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
