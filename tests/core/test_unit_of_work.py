"""A write is committed before its response is sent, on every route."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.core.session import db_session
from tests.conftest import AccountCredentials


def _session_dependants(dependant: Dependant) -> list[Dependant]:
    found = [dependant] if dependant.call is db_session else []
    for sub in dependant.dependencies:
        found += _session_dependants(sub)
    return found


class TestSessionScope:
    def test_every_route_commits_before_responding(self, app: FastAPI):
        late = [
            f"{sorted(route.methods)} {route.path}"
            for route in app.routes
            if isinstance(route, APIRoute)
            for dep in _session_dependants(route.dependant)
            if dep.scope != "function"
        ]
        assert late == [], "use Depends(db_session, scope='function') in: " + ", ".join(late)

    async def test_a_created_object_is_readable_by_the_next_request(self, client: httpx.AsyncClient,
                                                                    account: AccountCredentials):
        # Without the function scope this raced: the 200 went out before the commit.
        for i in range(20):
            r = await client.patch(f"/v1/accounts/{account.account_id}", json={"name": f"n{i}"},
                                   auth=account.basic)
            assert r.status_code == 200
            got = await client.get(f"/v1/accounts/{account.account_id}", auth=account.basic)
            assert got.json()["data"]["name"] == f"n{i}"
