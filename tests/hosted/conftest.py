from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.oidc.helpers import OidcSetup, make_setup


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client of the in-process app (keeps cookies, follows nothing)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 headers={"Origin": "http://testserver"}) as c:
        yield c
