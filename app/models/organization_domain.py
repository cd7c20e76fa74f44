from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps


class OrganizationDomain(Base, Timestamps):
    """An email domain an organization claims for SSO, proven by a DNS TXT record."""

    __tablename__ = "organization_domains"
    # A domain routes to one organization per issuer.
    __table_args__ = (UniqueConstraint("issuer_id", "domain"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"), nullable=False, index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), nullable=False, index=True)
    domain: Mapped[str] = mapped_column(String(253), nullable=False)
    txt_record_value: Mapped[str] = mapped_column(String(128), nullable=False)
    verified_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
