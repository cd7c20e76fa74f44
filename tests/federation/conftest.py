from collections.abc import AsyncIterator

import httpx
import pytest
from authpi_admin import AuthPIAdmin

from tests.fixtures.server import LiveServer
from tests.fixtures.tenancy import issuer_id, other_issuer_id, second_issuer_id  # noqa: F401
from tests.oidc.helpers import OidcSetup, make_setup


@pytest.fixture
async def down(admin: AuthPIAdmin) -> OidcSetup:
    """The downstream issuer: a client, a user (ada@globex.example) and her organization."""
    return await make_setup(admin)


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A browser's cookie jar against the live server."""
    async with httpx.AsyncClient(timeout=30) as c:
        yield c
