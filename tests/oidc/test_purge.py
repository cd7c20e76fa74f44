"""Expired protocol state is purged (used codes, spent refresh tokens, revoked-token markers)."""

from __future__ import annotations

import httpx
from authpi_admin import AuthPIAdmin

from app.oidc.runtime import purge_expired
from tests.conftest import AccountCredentials, count_rows
from tests.oidc.helpers import code_tokens, make_setup


class TestPurgeExpired:
    async def test_deletes_only_long_expired_rows(self, app, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                  account: AccountCredentials, pg) -> None:
        setup = await make_setup(admin)
        tokens = await code_tokens(client, setup)
        await code_tokens(client, setup)
        assert await count_rows(pg, "authorization_codes", account.account_id) == 2
        code_id = await pg.fetchval("SELECT id FROM authorization_codes WHERE account_id = $1 LIMIT 1",
                                    account.account_id)
        await pg.execute("UPDATE authorization_codes SET expires_at = 1 WHERE id = $1", code_id)
        await pg.execute("UPDATE refresh_tokens SET expires_at = 1 WHERE account_id = $1", account.account_id)
        await purge_expired(app.state.db)
        assert await count_rows(pg, "authorization_codes", account.account_id) == 1
        assert await count_rows(pg, "refresh_tokens", account.account_id) == 0
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"
