from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, json_list


class Note(Base, Timestamps):
    """A free-text note an operator attaches to a user, org, issuer, client or agent."""

    __tablename__ = "notes"
    __table_args__ = (
        Index("ix_notes_account_id_subject", "account_id", "subject_type", "subject_id"),
        # Mentions and backlinks are JSONB containment queries.
        Index("ix_notes_mentions", "mentions", postgresql_using="gin",
              postgresql_ops={"mentions": "jsonb_path_ops"}),
        Index("ix_notes_references", "references", postgresql_using="gin",
              postgresql_ops={"references": "jsonb_path_ops"}),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str | None] = mapped_column(ForeignKey("issuers.id"), nullable=True)
    subject_type: Mapped[str] = mapped_column(String(16), nullable=False)
    subject_id: Mapped[str] = mapped_column(String(64), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # [{"mentioned_user_id", "created_at"}], parsed from the content.
    mentions: Mapped[list[Any]] = json_list()
    # [{"ref_type", "ref_id", "ref_issuer_id", "created_at"}], parsed from the content.
    references: Mapped[list[Any]] = json_list()
