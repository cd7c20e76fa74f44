from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, OrgOwned, Timestamps, json_list, json_object


class Invitation(Base, OrgOwned, Timestamps):
    __tablename__ = "invitations"

    # pending | accepted | declined | revoked | expired
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="pending")
    email_invited: Mapped[str] = mapped_column(String(320), nullable=False)
    email_normalized: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    user_id_invited: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    scopes: Mapped[list[Any]] = json_list()
    groups: Mapped[list[Any]] = json_list()
    inviter: Mapped[dict[str, Any]] = json_object()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
    # HMAC-SHA256 of the acceptance token under the server key; the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    accepted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    declined_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_email_sent_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
