from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IssuerOwned, StatusFields, Timestamps, json_list, json_object


class Agent(Base, IssuerOwned, Timestamps, StatusFields):
    """A non-human principal of an issuer (an AI agent); its id is its OAuth client_id."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The agent's software version; the attribute is renamed because `version` is the row's
    # ETag version (Timestamps).
    agent_version: Mapped[str | None] = mapped_column("version", String(200), nullable=True)
    scopes: Mapped[list[Any]] = json_list()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
