"""Fixtures for API key tests: an issuer and organization rows, clients from chosen addresses."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.core.ids import new_id, now_ms
from app.models.issuer import Issuer
from app.models.organization import Organization
from app.runtime.invalidation import publish
from tests.conftest import AccountCredentials

_addresses = itertools.count(1)


def fresh_address() -> str:
    """A client address no other test uses, so per-address throttles never leak between tests."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@dataclass
class OrgRef:
    account_id: str
    issuer_id: str
    org_id: str


async def make_org(app: FastAPI, account_id: str, *, scopes: list[str] | None = None) -> OrgRef:
    """Issuer and organization rows written directly (their endpoints belong to other packages)."""
    async with app.state.db.unit_of_work() as session:
        issuer = Issuer(id=new_id("i"), account_id=account_id, name="acme-prod", status="active",
                        created_at=now_ms())
        session.add(issuer)
        await session.flush()
        org = Organization(id=new_id("org"), account_id=account_id, issuer_id=issuer.id,
                           name="Globex Corp", status="active", org_type="standard",
                           scopes=scopes or [], created_at=now_ms())
        session.add(org)
    return OrgRef(account_id, issuer.id, org.id)


async def set_org(app: FastAPI, ref: OrgRef, **values: object) -> None:
    """Change the organization row and notify, as the organization service does."""
    async with app.state.db.unit_of_work() as session:
        org = await session.get(Organization, ref.org_id)
        for k, v in values.items():
            setattr(org, k, v)
        org.updated_at = now_ms()
        await publish(session, "org", ref.org_id)


@pytest.fixture
async def org(app: FastAPI, account: AccountCredentials) -> OrgRef:
    return await make_org(app, account.account_id)


@pytest.fixture
def client_from(app: FastAPI) -> Callable[..., httpx.AsyncClient]:
    """Raw HTTP to the in-process app as seen from a given client address."""
    def make(address: str | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address or fresh_address(), 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")
    return make


@pytest.fixture
async def anon(client_from: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client from an address of its own."""
    async with client_from() as c:
        yield c


def sdk_for(app: FastAPI, basic: tuple[str, str], address: str | None = None) -> AuthPIAdmin:
    transport = httpx.ASGITransport(app=app, client=(address or fresh_address(), 40000))
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    return AuthPIAdmin(api_key=basic, base_url="http://testserver", http_client=http)
