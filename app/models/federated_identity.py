from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class FederatedIdentity(Base):
    """A user's identity at an upstream provider: keyed on (the auth method or the organization's
    connection, the upstream subject), never on an email."""

    __tablename__ = "federated_identities"
    __table_args__ = (UniqueConstraint("issuer_id", "source_id", "subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # fid_...
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"), nullable=False, index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    # auth_method (an issuer's upstream IdP) | organization (an organization's SSO connection)
    source_type: Mapped[str] = mapped_column(String(16), nullable=False)
    source_id: Mapped[str] = mapped_column(String(40), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    # The email the upstream asserted when the identity was linked (informational only).
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
