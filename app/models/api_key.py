from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, StatusFields, Timestamps, json_list, json_object


class ApiKey(Base, Timestamps, StatusFields):
    """An account key (org_id = the account's facade org) or an organization key."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "account_id", "org_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    # "account" or "organization": which API governs it and what /v1/me answers.
    owner_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    issuer_id: Mapped[str] = mapped_column(String(40), nullable=False)
    org_id: Mapped[str] = mapped_column(String(40), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False, default="api_key")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    tags: Mapped[list[Any]] = json_list()
    restrictions: Mapped[dict[str, Any]] = json_object()
    secret_hash: Mapped[str] = mapped_column(Text, nullable=False)
    secret_hint: Mapped[str] = mapped_column(String(16), nullable=False)
    # After a rotation the previous secret keeps working until this time (ms), then never.
    previous_secret_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_rotated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
