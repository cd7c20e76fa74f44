from __future__ import annotations

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, OrgOwned, Timestamps


class OrganizationDomain(Base, OrgOwned, Timestamps):
    """An email domain an organization claims for SSO, proven by a DNS TXT record."""

    __tablename__ = "organization_domains"
    # A domain routes to one organization per issuer.
    __table_args__ = (UniqueConstraint("issuer_id", "domain"),)

    domain: Mapped[str] = mapped_column(String(253), nullable=False)
    txt_record_value: Mapped[str] = mapped_column(String(128), nullable=False)
    verified_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
