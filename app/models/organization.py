from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IssuerOwned, StatusFields, Timestamps, json_list, json_object


class Organization(Base, IssuerOwned, Timestamps, StatusFields):
    __tablename__ = "organizations"

    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    logo_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    org_type: Mapped[str] = mapped_column(String(32), nullable=False, default="standard")
    max_members: Mapped[int | None] = mapped_column(Integer, nullable=True)
    default_member_scopes: Mapped[list[Any]] = json_list()
    invitation_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    invitation_message: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # What this organization may grant (members, groups, keys); empty means "anything".
    scopes: Mapped[list[Any]] = json_list()
    security: Mapped[dict[str, Any]] = json_object()
    sso: Mapped[dict[str, Any]] = json_object()
    # address, business_details, contact, social_links, custom_fields: display data, kept together.
    profile: Mapped[dict[str, Any]] = json_object()
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")
    # The SSO connection secret (argon2id), shown once by sso/rotate-secret (revision 0202).
    sso_secret_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    sso_secret_rotated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The OIDC connection's client secret (sso.connection.client_secret on input), AES-GCM under the
    # server key with the organization id as associated data; never returned.
    sso_client_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
