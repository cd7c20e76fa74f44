"""Tenant lookups every package under /issuers/{issuer_id} starts from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.models.issuer import Issuer


async def get_issuer_in_account(session: AsyncSession, account_id: str, issuer_id: str) -> Issuer:
    """The issuer, if it belongs to the account and is not deleted; otherwise 404 (never 403)."""
    issuer = await session.scalar(
        select(Issuer).where(Issuer.id == issuer_id, Issuer.account_id == account_id,
                             Issuer.status != "deleted"))
    if issuer is None:
        raise NotFound("issuer")
    return issuer
