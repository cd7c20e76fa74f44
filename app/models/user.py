from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IssuerOwned, StatusFields, Timestamps, json_list, json_object


class User(Base, IssuerOwned, Timestamps, StatusFields):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("issuer_id", "username_normalized"),
                      Index("ix_users_issuer_id_username_skeleton", "issuer_id", "username_skeleton"))

    username_type: Mapped[str] = mapped_column(String(32), nullable=False)
    username: Mapped[str] = mapped_column(String(320), nullable=False)
    username_normalized: Mapped[str] = mapped_column(String(320), nullable=False)
    # Look-alike key of username_normalized (app/user/identifiers.py): one per issuer among users.
    username_skeleton: Mapped[str | None] = mapped_column(String(320), nullable=True)
    profile: Mapped[dict[str, Any]] = json_object()
    scopes: Mapped[list[Any]] = json_list()
    security: Mapped[dict[str, Any]] = json_object()
    preferences: Mapped[dict[str, Any]] = json_object()
    custom_fields: Mapped[dict[str, Any]] = json_object()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
    # argon2id; never serialised.
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Admission by an administrator: {status: pending|approved|rejected, requested_at, decided_at,
    # decided_by, reason}; empty when the user never needed approval (revision 0202).
    approval: Mapped[dict[str, Any]] = json_object()
    # When the password was last set: the password verifier's created_at (revision 0200).
    password_changed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
