from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, json_object


class Event(Base):
    """The append-only identity trail (UPDATE and DELETE are rejected by a trigger).

    The row is also the webhook outbox entry: `deliverable` marks the types that may fan out.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "account_id", "id"),
        Index(None, "account_id", "type", "id"),
        Index(None, "account_id", "timestamp"),
        # The events.list filters, each ordered by id as the keyset pages are (no sort, any depth).
        Index(None, "issuer_id", "id"),
        Index(None, "user_id", "id"),
        Index(None, "client_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), nullable=False)
    issuer_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    type: Mapped[str] = mapped_column(String(80), nullable=False)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    subject: Mapped[dict[str, Any]] = json_object()
    data: Mapped[dict[str, Any]] = json_object()
    auth: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    trigger: Mapped[str | None] = mapped_column(String(80), nullable=True)
    trace: Mapped[str | None] = mapped_column(String(80), nullable=True)
    deliverable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
