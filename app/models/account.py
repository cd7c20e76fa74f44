from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, StatusFields, Timestamps, json_list, json_object


class Account(Base, Timestamps, StatusFields):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Accounts are facades over an organization of AuthPI's own issuer (contract §3.1 Account).
    org_id: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    logo_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    owner_user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    domains: Mapped[list[Any]] = json_list()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
