from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps


class WebhookDelivery(Timestamps, Base):
    """One (event, endpoint) pair: inserted by the events trigger, claimed by the relay.

    `status`: pending (due at next_attempt_at) -> succeeded | failed (attempt budget spent).
    A relay holds the row lock (FOR UPDATE SKIP LOCKED) while it sends, so a crashed process
    releases its claims with its connection and nothing needs a lease to expire.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "webhook_id"),
        Index(None, "account_id", "webhook_id", "id"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_order", "webhook_id", "ordering_key", "event_id",
              postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), nullable=False)
    webhook_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[str] = mapped_column(String(40), ForeignKey("events.id"), nullable=False)
    event_type: Mapped[str] = mapped_column(String(80), nullable=False)
    # Deliveries sharing a key go out one at a time in event order ("in order per subject").
    ordering_key: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempt_budget: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    first_attempted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_attempted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    last_response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
