"""The sessions admin API: list per user, get, revoke, suspend, reactivate; isolation."""

from __future__ import annotations

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, ValidationError

from tests.oidc.helpers import code_tokens, make_setup


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, admin: AuthPIAdmin):
    setup = await make_setup(admin)
    tokens = await code_tokens(client, setup)
    sessions = (await admin.issuer(setup.issuer_id).user(setup.user_id).sessions.list()).data
    return setup, tokens, sessions[0]


async def _userinfo(client: httpx.AsyncClient, setup, token: str) -> int:
    r = await client.get(f"/{setup.issuer_id}/userinfo", headers={"authorization": f"Bearer {token}"})
    return r.status_code


class TestListUserSessions:
    async def test_lists_the_login_session(self, signed_in) -> None:
        setup, _, s = signed_in
        assert s.id.startswith("s_")
        assert s.user_id == setup.user_id
        assert s.status == "active"
        assert s.access_token_issued_at


class TestGetSession:
    async def test_get(self, admin: AuthPIAdmin, signed_in) -> None:
        setup, _, s = signed_in
        got = await admin.issuer(setup.issuer_id).sessions.get(s.id)
        assert got.id == s.id
        assert got.client == {"id": setup.web_id}


class TestRevokeSession:
    async def test_revoke_kills_its_tokens(self, client, admin: AuthPIAdmin, signed_in) -> None:
        setup, tokens, s = signed_in
        assert await _userinfo(client, setup, tokens["access_token"]) == 200
        revoked = await admin.issuer(setup.issuer_id).sessions.revoke(s.id, {"reason": "stolen laptop"})
        assert revoked.status == "revoked"
        assert revoked.revoked_reason == "stolen laptop"
        assert await _userinfo(client, setup, tokens["access_token"]) == 401
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"
        assert (await admin.events.list(event_types="session.revoked")).data
        with pytest.raises(ValidationError):
            await admin.issuer(setup.issuer_id).sessions.reactivate(s.id)


class TestSuspendSession:
    async def test_suspend_then_reactivate(self, client, admin: AuthPIAdmin, signed_in) -> None:
        setup, _, s = signed_in
        suspended = await admin.issuer(setup.issuer_id).sessions.suspend(s.id)
        assert suspended.status == "suspended"
        back = await admin.issuer(setup.issuer_id).sessions.reactivate(s.id)
        assert back.status == "active"


class TestSessionIsolation:
    async def test_other_account_gets_404(self, other_admin: AuthPIAdmin, signed_in) -> None:
        setup, _, s = signed_in
        sessions = other_admin.issuer(setup.issuer_id).sessions
        for call in (lambda: sessions.get(s.id), lambda: sessions.revoke(s.id),
                     lambda: sessions.suspend(s.id), lambda: sessions.reactivate(s.id),
                     lambda: other_admin.issuer(setup.issuer_id).user(setup.user_id).sessions.list()):
            with pytest.raises(NotFoundError):
                await call()
