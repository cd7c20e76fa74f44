"""A pushed authorization request (RFC 9126): its parameters, until its `request_uri` is used once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, json_object


class PushedRequest(Base):
    __tablename__ = "pushed_authorization_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # par_...
    # HMAC of the request_uri's random part under the server key: the URI itself is never stored.
    uri_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(String(40), nullable=False)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    params: Mapped[dict[str, Any]] = json_object()
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
