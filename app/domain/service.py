"""Account domains, kept as a JSONB list on the account row (the `Account.domains` of the contract).

Each entry: `{host, verified, primary, added_at, verified_at, assigned_issuer_id, assigned_at,
verification: {type: "dns_txt", txt_record_name, txt_record_value}}`. Ownership is proven by
publishing `txt_record_value` as a TXT record at `txt_record_name`; a host is verified by at most
one account. The first domain is the primary; when the primary goes, the oldest remaining one is.
Every mutation locks the account row (the list is read-modified-written) and moves its version.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import constant_time_equals
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.ids import now_ms
from app.core.rows import one_or_404
from app.domain.schemas import normalize_host
from app.events.service import record
from app.models.account import Account
from app.models.issuer import Issuer
from app.organization.dns import DnsError

TxtResolver = Callable[[str], Awaitable[list[str]]]

MAX_DOMAINS = 20
TXT_PREFIX = "_authpi-verification"


def _touch(account: Account) -> None:
    account.updated_at = max(now_ms(), account.version + 1)


async def _event(session: AsyncSession, account: Account, type: str, auth: Principal, host: str,
                 issuer_id: str | None = None) -> None:
    data: dict[str, Any] = {"host": host}
    if issuer_id:
        data["issuer_id"] = issuer_id
    await record(session, type=type, account_id=account.id, issuer_id=issuer_id,
                 subject={"type": "account", "id": account.id}, data=data, auth=auth)


async def lock_account(session: AsyncSession, account_id: str) -> Account:
    return await one_or_404(session, select(Account).where(Account.id == account_id), "account",
                            for_update=True)


def find(account: Account, host: str) -> tuple[int, dict[str, Any]]:
    host = normalize_host(host)
    for i, entry in enumerate(account.domains):
        if entry.get("host") == host:
            return i, entry
    raise NotFound("domain")


def _replace(account: Account, index: int, entry: dict[str, Any]) -> None:
    # A new list object, so the ORM sees the JSONB column change.
    domains = list(account.domains)
    domains[index] = entry
    account.domains = domains


async def _verified_elsewhere(session: AsyncSession, account: Account, host: str) -> bool:
    other = await session.scalar(select(Account.id).where(
        Account.id != account.id, Account.domains.contains([{"host": host, "verified": True}])))
    return other is not None


async def add_domain(session: AsyncSession, account: Account, host: str, auth: Principal) -> Account:
    if any(d.get("host") == host for d in account.domains):
        raise Conflict("This domain is already on the account")
    if len(account.domains) >= MAX_DOMAINS:
        raise Conflict(f"An account has at most {MAX_DOMAINS} domains")
    if await _verified_elsewhere(session, account, host):
        raise Conflict("This domain is verified by another account")
    entry = {
        "host": host, "verified": False, "primary": not account.domains, "added_at": now_ms(),
        "verified_at": None, "assigned_issuer_id": None, "assigned_at": None,
        "verification": {"type": "dns_txt", "txt_record_name": f"{TXT_PREFIX}.{host}",
                         "txt_record_value": f"authpi-verification={secrets.token_urlsafe(24)}"},
    }
    account.domains = [*account.domains, entry]
    _touch(account)
    await session.flush()
    await _event(session, account, "account.domain.added", auth, host)
    return account


async def remove_domain(session: AsyncSession, account: Account, host: str, auth: Principal) -> None:
    index, entry = find(account, host)
    domains = [d for i, d in enumerate(account.domains) if i != index]
    if entry.get("primary") and domains:
        domains[0] = {**domains[0], "primary": True}
    account.domains = domains
    _touch(account)
    await session.flush()
    await _event(session, account, "account.domain.removed", auth, entry["host"])


async def assign_domain(session: AsyncSession, account: Account, host: str, issuer_id: str,
                        auth: Principal) -> Account:
    """Route the domain to an issuer of the account (served once the domain is verified)."""
    index, entry = find(account, host)
    issuer = await session.scalar(select(Issuer.id).where(
        Issuer.id == issuer_id, Issuer.account_id == account.id, Issuer.status != "deleted"))
    if issuer is None:
        raise ValidationFailed(f"No issuer {issuer_id} in this account", field="issuer_id", code="not_found")
    if entry.get("assigned_issuer_id") == issuer_id:
        return account  # already so: nothing to change or record
    _replace(account, index, {**entry, "assigned_issuer_id": issuer_id, "assigned_at": now_ms()})
    _touch(account)
    await session.flush()
    await _event(session, account, "account.domain.assigned", auth, entry["host"], issuer_id)
    return account


async def unassign_domain(session: AsyncSession, account: Account, host: str, auth: Principal) -> Account:
    index, entry = find(account, host)
    previous = entry.get("assigned_issuer_id")
    if previous is None:
        return account
    _replace(account, index, {**entry, "assigned_issuer_id": None, "assigned_at": None})
    _touch(account)
    await session.flush()
    await _event(session, account, "account.domain.unassigned", auth, entry["host"], previous)
    return account


async def verify_domain(session: AsyncSession, account: Account, host: str, resolver: TxtResolver,
                        auth: Principal) -> Account:
    """Look for the TXT record; when it is not there (yet) the account is returned unchanged."""
    index, entry = find(account, host)
    if entry.get("verified"):
        return account
    proof = entry["verification"]
    try:
        values = await resolver(proof["txt_record_name"])
    except (DnsError, OSError):
        return account
    if not any(constant_time_equals(v.strip(), proof["txt_record_value"]) for v in values):
        return account
    if await _verified_elsewhere(session, account, entry["host"]):
        raise Conflict("This domain is verified by another account")
    _replace(account, index, {**entry, "verified": True, "verified_at": now_ms()})
    _touch(account)
    await session.flush()
    await _event(session, account, "account.domain.verified", auth, entry["host"])
    return account
