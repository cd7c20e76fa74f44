from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, OrgOwned, Timestamps, json_list, json_object


class Membership(Base, OrgOwned, Timestamps):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "member_id"),)

    member_id: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    member_type: Mapped[str] = mapped_column(String(16), nullable=False, default="user")
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="active")
    scopes: Mapped[list[Any]] = json_list()
    groups: Mapped[list[Any]] = json_list()  # group ids; their scopes add to the member's
    user_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
    joined_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
