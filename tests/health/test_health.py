from __future__ import annotations

import httpx


class TestProbes:
    async def test_healthz(self, client: httpx.AsyncClient):
        r = await client.get("/healthz")
        assert r.status_code == 200

    async def test_readyz_reports_schema_at_head(self, client: httpx.AsyncClient):
        r = await client.get("/readyz")
        assert r.status_code == 200
        assert r.json()["database"] == "ok"
