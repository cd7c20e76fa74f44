"""`authpi account login-link`: a single-use, 10-minute link that signs an operator in.

Only the token's HMAC (under the server key) is stored. Following the link (a POST from the page it
opens, so a link scanner's GET changes nothing) marks it used in one conditional UPDATE, then mints a
short-lived account key (its `api-key.created` event names the link), which is the session's actor.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.schemas import AUTHPI_ISSUER_ID
from app.account.service import ONBOARDING_KEY_SCOPES, get_account
from app.api_key.service import create_api_key
from app.core.crypto import hmac_sha256
from app.core.errors import Conflict, NotFound
from app.core.ids import new_id, now_ms
from app.models.api_key import ApiKey
from app.models.console_login_link import ConsoleLoginLink

LINK_TTL_MS = 10 * 60 * 1000
# The minted key outlives no console session: the session's absolute lifetime.
KEY_TTL_MS = 12 * 3600 * 1000


def _hash(server_key: str, token: str) -> str:
    return hmac_sha256(server_key, "console-login-link:" + token)


async def create_link(
    session: AsyncSession, server_key: str, account_id: str
) -> tuple[ConsoleLoginLink, str]:
    """A new link for the account; returns the row and the token (shown once)."""
    account = await get_account(session, account_id)
    if account.status != "active":
        raise Conflict("The account is not active")
    token = secrets.token_urlsafe(32)
    now = now_ms()
    link = ConsoleLoginLink(
        id=new_id("cll"),
        account_id=account.id,
        token_hash=_hash(server_key, token),
        expires_at=now + LINK_TTL_MS,
        created_at=now,
    )
    session.add(link)
    await session.flush()
    return link, token


async def peek(session: AsyncSession, server_key: str, token: str) -> ConsoleLoginLink | None:
    """The link if it can still be used (nothing changes)."""
    link = await session.scalar(
        select(ConsoleLoginLink).where(ConsoleLoginLink.token_hash == _hash(server_key, token))
    )
    if link is None or link.used_at is not None or link.expires_at <= now_ms():
        return None
    return link


async def consume(session: AsyncSession, server_key: str, token: str) -> tuple[ApiKey, str]:
    """Use the link once: mint the short-lived account key. Unknown, used or expired: NotFound."""
    now = now_ms()
    link_id = await session.scalar(
        update(ConsoleLoginLink)
        .where(
            ConsoleLoginLink.token_hash == _hash(server_key, token),
            ConsoleLoginLink.used_at.is_(None),
            ConsoleLoginLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(ConsoleLoginLink.id)
    )
    if link_id is None:
        raise NotFound("login link")
    link = await session.get(ConsoleLoginLink, link_id)
    assert link is not None
    account = await get_account(session, link.account_id)
    if account.status != "active":
        raise NotFound("login link")
    key, secret = await create_api_key(
        session,
        account_id=account.id,
        owner_kind="account",
        issuer_id=AUTHPI_ISSUER_ID,
        org_id=account.org_id,
        name="console sign-in link",
        description=f"Minted by the console login link {link.id}",
        restrictions={"scopes": ONBOARDING_KEY_SCOPES},
        expires_at=now + KEY_TTL_MS,
        auth={"type": "system", "actor": "console-login-link", "link_id": link.id},
    )
    link.key_id = key.id
    await session.flush()
    return key, secret
