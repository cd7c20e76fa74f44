"""Oversize and malformed requests are refused at once, in the contract's error shape."""

from __future__ import annotations

import httpx

from tests.conftest import AccountCredentials, count_rows


class TestBodyLimits:
    async def test_oversize_body_is_413_and_writes_nothing(self, client: httpx.AsyncClient,
                                                          account: AccountCredentials, pg):
        before = await count_rows(pg, "events", account.account_id)
        r = await client.patch(f"/v1/accounts/{account.account_id}", content=b"{" + b" " * 2_000_000 + b"}",
                               headers={"content-type": "application/json"}, auth=account.basic)
        assert r.status_code == 413
        assert set(r.json()) >= {"error", "error_description", "retryable"}
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_malformed_json_is_422_with_fields(self, client: httpx.AsyncClient,
                                                    account: AccountCredentials):
        r = await client.patch(f"/v1/accounts/{account.account_id}", content=b"{not json",
                               headers={"content-type": "application/json"}, auth=account.basic)
        assert r.status_code == 422
        assert r.json()["fields"]

    async def test_huge_headers_are_431(self, client: httpx.AsyncClient, account: AccountCredentials):
        r = await client.get(f"/v1/accounts/{account.account_id}", headers={"x-big": "a" * 20_000},
                             auth=account.basic)
        assert r.status_code == 431

    async def test_deeply_nested_metadata_is_422(self, client: httpx.AsyncClient, account: AccountCredentials,
                                                pg):
        nested: dict = {}
        cursor = nested
        for _ in range(20):
            cursor["a"] = {}
            cursor = cursor["a"]
        before = await count_rows(pg, "events", account.account_id)
        r = await client.patch(f"/v1/accounts/{account.account_id}", json={"metadata": nested},
                               auth=account.basic)
        assert r.status_code == 422
        assert r.json()["fields"][0]["field"] == "metadata"
        assert await count_rows(pg, "events", account.account_id) == before


class TestUnknownRoutes:
    async def test_unknown_path_is_404_in_contract_shape(self, client: httpx.AsyncClient):
        r = await client.get("/v1/nothing-here")
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"


class TestFastPathsAreBehindTheLimits:
    async def test_oversize_token_request_is_413(self, client: httpx.AsyncClient):
        r = await client.post("/i_01m8h97hqw1qbkm9nnvhj65nzt/token", content=b"a=" + b"b" * 2_000_000,
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413

    async def test_oversize_headers_on_me_are_431(self, client: httpx.AsyncClient):
        r = await client.get("/v1/me", headers={"x-big": "a" * 20_000})
        assert r.status_code == 431


class TestStreamedBodies:
    async def test_oversize_chunked_body_is_413_and_writes_nothing(
            self, client: httpx.AsyncClient, account: AccountCredentials, pg):
        async def chunks():
            yield b'{"name": "'
            for _ in range(40):
                yield b"a" * 65536
            yield b'"}'

        before = await count_rows(pg, "events", account.account_id)
        r = await client.patch(f"/v1/accounts/{account.account_id}", content=chunks(),
                               headers={"content-type": "application/json"}, auth=account.basic)
        assert "content-length" not in r.request.headers
        assert r.status_code == 413
        assert r.json()["error"] == "invalid_request"
        assert await count_rows(pg, "events", account.account_id) == before
