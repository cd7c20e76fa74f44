"""Tenant lookups every package under /issuers/{issuer_id} starts from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.rows import one_or_404
from app.models.issuer import Issuer


async def get_issuer_in_account(session: AsyncSession, account_id: str, issuer_id: str) -> Issuer:
    """The issuer, if it belongs to the account and is not deleted; otherwise 404 (never 403)."""
    stmt = select(Issuer).where(Issuer.id == issuer_id, Issuer.account_id == account_id,
                                Issuer.status != "deleted")
    return await one_or_404(session, stmt, "issuer")
