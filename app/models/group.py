from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, OrgOwned, Timestamps, json_list, json_object


class Group(Base, OrgOwned, Timestamps):
    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    scopes: Mapped[list[Any]] = json_list()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
