"""Idempotency-Key on POST/PATCH: replay, body mismatch, per-credential scope."""

from __future__ import annotations

import httpx

from tests.conftest import AccountCredentials, count_rows


class TestIdempotentPatch:
    async def test_same_key_same_body_replays_once(self, client: httpx.AsyncClient,
                                                    account: AccountCredentials, pg):
        url = f"/v1/accounts/{account.account_id}"
        headers = {"Idempotency-Key": "k-1"}
        first = await client.patch(url, json={"name": "One"}, headers=headers, auth=account.basic)
        before = await count_rows(pg, "events", account.account_id)
        second = await client.patch(url, json={"name": "One"}, headers=headers, auth=account.basic)
        assert first.status_code == second.status_code == 200
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
        assert second.headers["etag"] == first.headers["etag"]
        # The replay did not run the update again: no new event.
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_same_key_other_body_is_422(self, client: httpx.AsyncClient, account: AccountCredentials):
        url = f"/v1/accounts/{account.account_id}"
        headers = {"Idempotency-Key": "k-2"}
        first = await client.patch(url, json={"name": "A"}, headers=headers, auth=account.basic)
        assert first.status_code == 200
        second = await client.patch(url, json={"name": "B"}, headers=headers, auth=account.basic)
        assert second.status_code == 422
        body = second.json()
        assert body["error"] == "invalid_request"
        assert body["retryable"] is False

    async def test_failed_request_is_not_kept(self, client: httpx.AsyncClient, account: AccountCredentials):
        url = f"/v1/accounts/{account.account_id}"
        headers = {"Idempotency-Key": "k-3"}
        bad = await client.patch(url, json={"name": 5}, headers=headers, auth=account.basic)
        assert bad.status_code == 422
        good = await client.patch(url, json={"name": 5}, headers=headers, auth=account.basic)
        assert "Idempotent-Replayed" not in good.headers

    async def test_another_credential_does_not_get_the_replay(self, client: httpx.AsyncClient,
                                                               account: AccountCredentials,
                                                               other_account: AccountCredentials):
        url = f"/v1/accounts/{account.account_id}"
        headers = {"Idempotency-Key": "shared-key"}
        ok = await client.patch(url, json={"name": "Mine"}, headers=headers, auth=account.basic)
        assert ok.status_code == 200
        stolen = await client.patch(url, json={"name": "Mine"}, headers=headers, auth=other_account.basic)
        assert stolen.status_code == 404
        assert "Idempotent-Replayed" not in stolen.headers

    async def test_oversize_key_is_422(self, client: httpx.AsyncClient, account: AccountCredentials):
        r = await client.patch(f"/v1/accounts/{account.account_id}", json={"name": "x"},
                               headers={"Idempotency-Key": "k" * 257}, auth=account.basic)
        assert r.status_code == 422


class TestStoredResponses:
    async def test_replayable_bodies_are_not_readable_in_the_database(
            self, client: httpx.AsyncClient, account: AccountCredentials, pg):
        r = await client.post(f"/v1/accounts/{account.account_id}/api-keys",
                              json={"name": "ci", "restrictions": {"scopes": ["issuers:read"]}},
                              headers={"Idempotency-Key": "secret-bearing"}, auth=account.basic)
        assert r.status_code in (200, 201)
        secret = r.json()["data"]["secret_plain"]
        stored = await pg.fetch("SELECT response_body FROM idempotency_keys WHERE key = 'secret-bearing'")
        assert stored
        assert all(secret.encode() not in bytes(row["response_body"]) for row in stored)
        replay = await client.post(f"/v1/accounts/{account.account_id}/api-keys",
                                   json={"name": "ci", "restrictions": {"scopes": ["issuers:read"]}},
                                   headers={"Idempotency-Key": "secret-bearing"}, auth=account.basic)
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == r.json()
