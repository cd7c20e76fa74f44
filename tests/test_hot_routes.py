"""`GET /v1/me` and `POST /{issuer}/token` are plain routes at the head of the route list: no ASGI
fast path. They stay documented, and the request limits and exception handlers apply to them."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.routing import Route


class TestHotRoutes:
    def test_served_first_and_documented(self, app: FastAPI):
        head = app.router.routes[:2]
        assert all(type(r) is Route for r in head)
        assert {(r.path, m) for r in head for m in r.methods or ()} >= {
            ("/v1/me", "GET"), ("/{issuer_id}/token", "POST")}
        paths = app.openapi()["paths"]
        assert "get" in paths["/v1/me"]
        assert "post" in paths["/{issuer_id}/token"]

    async def test_request_limits_apply(self, app: FastAPI, client: httpx.AsyncClient):
        limit = app.state.settings.max_body_bytes
        r = await client.post("/i_01aaaaaaaaaaaaaaaaaaaaaaaa/token", content=b"x" * (limit + 1),
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413
        assert r.json()["error"]

    async def test_errors_use_the_contract_shape(self, client: httpx.AsyncClient):
        r = await client.get("/v1/me", headers={"Authorization": "Basic !!!"})
        assert r.status_code == 401
        assert set(r.json()) >= {"error", "error_description", "retryable"}
        r = await client.get("/v1/me")
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"
