from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IssuerOwned, Timestamps, json_object


class IssuerAuthMethod(Base, IssuerOwned, Timestamps):
    """A way end users of an issuer sign in (password, email OTP, magic link, an upstream IdP...)."""

    __tablename__ = "issuer_auth_methods"

    type: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    settings: Mapped[dict[str, Any]] = json_object()
    # An upstream IdP's client secret (settings.client_secret on input), AES-GCM under the server
    # key with the method id as associated data; never returned.
    secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
