"""Credentials: what is refused, and in which shape."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import AccountCredentials


class TestCredentialRefusals:
    @pytest.mark.parametrize("header", [
        None,
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"key_x:").decode(),
        "Digest abc",
        "Bearer ",
    ])
    async def test_malformed_or_missing_is_401(self, client: httpx.AsyncClient, header: str | None):
        headers = {"authorization": header} if header else {}
        r = await client.get("/v1/me", headers=headers)
        assert r.status_code == 401
        body = r.json()
        assert body["error"] == "unauthorized"
        assert body["retryable"] is False

    async def test_wrong_secret_is_401(self, client: httpx.AsyncClient, account: AccountCredentials):
        r = await client.get("/v1/me", auth=(account.key_id, account.secret + "x"))
        assert r.status_code == 401

    async def test_other_accounts_path_is_404(self, client: httpx.AsyncClient, account: AccountCredentials,
                                              other_account: AccountCredentials):
        r = await client.get(f"/v1/accounts/{other_account.account_id}/events", auth=account.basic)
        assert r.status_code == 404
