"""Declarative base with a naming convention (stable constraint names for Alembic)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.ids import now_ms

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB, list[str]: JSONB}


def json_object(name: str | None = None) -> Mapped[dict[str, Any]]:
    """A NOT NULL JSONB object column; `name` maps attributes like `metadata_` to `metadata`."""
    if name:
        return mapped_column(name, JSONB, nullable=False, default=dict, server_default="{}")
    return mapped_column(JSONB, nullable=False, default=dict, server_default="{}")


def json_list(name: str | None = None) -> Mapped[list[Any]]:
    if name:
        return mapped_column(name, JSONB, nullable=False, default=list, server_default="[]")
    return mapped_column(JSONB, nullable=False, default=list, server_default="[]")


def assign(row: Any, changes: dict[str, Any], *, lists: tuple[str, ...] = (),
           columns: dict[str, str] | None = None) -> None:
    """An update body's fields onto its row: a `name` sent as null is kept (it cannot be unset), a
    JSON list (`lists`) or `metadata` sent as null is emptied; `metadata` lives in `metadata_`, and
    `columns` names any other attribute that differs from its field."""
    attributes = {"metadata": "metadata_", **(columns or {})}
    for field, value in changes.items():
        if field == "name" and value is None:
            continue
        if field in lists:
            value = value or []
        elif field == "metadata":
            value = value or {}
        setattr(row, attributes.get(field, field), value)


class Timestamps:
    """Times are integer milliseconds since the epoch, as the Core API speaks them."""

    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False, default=now_ms)
    updated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    @property
    def version(self) -> int:
        return self.updated_at or self.created_at


class StatusFields:
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="active")
    status_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    status_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def apply_status(self, status: str | None, reason: str | None, reason_sent: bool,
                     actor: str | None) -> bool:
        """An update body's `status` / `status_reason`: a new status moves with its time, reason and
        actor; otherwise a sent reason alone replaces the reason. True when the status moved."""
        if status is not None and status != self.status:
            self.status = status
            self.status_at = now_ms()
            self.status_reason = reason
            self.status_by = actor
            return True
        if reason_sent:
            self.status_reason = reason
        return False


class IssuerOwned:
    """A row inside one issuer: its id and the two tenant columns every query of it filters on."""

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"), nullable=False, index=True)


class OrgOwned(IssuerOwned):
    """A row inside one organization of an issuer."""

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), nullable=False, index=True)


class UserOwned(IssuerOwned):
    """A row that belongs to one user of an issuer."""

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
