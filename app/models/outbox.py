from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class OutboxMessage(Base):
    """One message to deliver (an email, later a back-channel logout), written in the transaction of
    the change that causes it, claimed by the relay with FOR UPDATE SKIP LOCKED (app/outbox).

    `status`: pending (due at next_attempt_at) -> sent | failed (attempt budget spent, which is
    AUTHPI_OUTBOX_MAX_ATTEMPTS or the kind's, or a permanent refusal). `payload_encrypted`
    (AES-GCM under the server key, bound to the row id) may hold link tokens in plaintext, so it
    is erased (NULL) once the message is sent or has finally failed.
    `message_id` is assigned once at enqueue: every retry carries the same one.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "next_attempt_at",
              postgresql_where=text("status = 'pending'")),
        Index(None, "account_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), nullable=False)
    issuer_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    # What the message is about (e.g. "invitation") and that object's id.
    purpose: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ref_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    payload_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sent_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
