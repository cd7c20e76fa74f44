"""Accounts: the tenant root. Created by the CLI (console onboarding in the hosted service)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.schemas import AUTHPI_ISSUER_ID, AccountUpdate
from app.api_key.service import create_api_key
from app.core.auth import Principal
from app.core.errors import ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.rows import one_or_404
from app.events.service import record
from app.models.account import Account
from app.models.api_key import ApiKey
from app.models.base import assign
from app.models.user import User

# What a freshly onboarded account key may do: everything in its account.
ONBOARDING_KEY_SCOPES = ["*:**"]


async def create_account(session: AsyncSession, name: str) -> tuple[Account, ApiKey, str]:
    account = Account(id=new_id("acc"), org_id=new_id("org"), name=name, status="active",
                      created_at=now_ms())
    session.add(account)
    await session.flush()
    system = {"type": "system", "actor": "cli"}
    await record(session, type="account.created", account_id=account.id,
                 subject={"type": "account", "id": account.id}, data={"name": name}, auth=system)
    key, secret = await create_api_key(
        session, account_id=account.id, owner_kind="account", issuer_id=AUTHPI_ISSUER_ID,
        org_id=account.org_id, name=f"{name} onboarding key",
        restrictions={"scopes": ONBOARDING_KEY_SCOPES}, auth=system)
    return account, key, secret


async def get_account(session: AsyncSession, account_id: str) -> Account:
    return await one_or_404(session, select(Account).where(Account.id == account_id), "account")


async def update_account(session: AsyncSession, account: Account, body: AccountUpdate,
                         auth: Principal) -> Account:
    changes = body.model_dump(exclude_unset=True)
    owner = changes.get("owner_user_id")
    if owner is not None:
        # A reference must name something of this tenant (a user of one of the account's issuers).
        exists = await session.scalar(select(User.id).where(
            User.id == owner, User.account_id == account.id, User.status != "deleted"))
        if exists is None:
            raise ValidationFailed("owner_user_id must name a user of this account",
                                   field="owner_user_id", code="not_found")
    assign(account, changes)
    account.updated_at = max(now_ms(), (account.updated_at or account.created_at) + 1)
    await session.flush()
    await record(session, type="account.updated", account_id=account.id,
                 subject={"type": "account", "id": account.id}, data={"changed": sorted(changes)},
                 auth=auth)
    return account
