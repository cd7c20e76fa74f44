from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import AccountCredentials
from tests.console.helpers import sign_in


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping HTTP client on the in-process app (the console's cookies are path /console)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def console(browser: httpx.AsyncClient, account: AccountCredentials) -> httpx.AsyncClient:
    """Signed in with the account's key."""
    response = await sign_in(browser, account.key_id, account.secret)
    assert response.status_code == 303, response.text
    return browser
