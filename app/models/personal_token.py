from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, StatusFields, Timestamps, UserOwned, json_list, json_object


class PersonalToken(Base, UserOwned, Timestamps, StatusFields):
    """A user's personal access token (PAT): a Bearer credential `tok_<id>.<secret>`."""

    __tablename__ = "personal_tokens"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    tags: Mapped[list[Any]] = json_list()
    # {"scopes": [...]}: what the token may do, within what its user may do.
    restrictions: Mapped[dict[str, Any]] = json_object()
    audience: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # HMAC-SHA256 of the 256-bit random secret under the server key (see app/user/tokens.py).
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
