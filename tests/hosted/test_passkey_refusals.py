"""Passkey refusals that need no authenticator: a disabled method posted by hand, a credential of
another issuer, a missing ceremony. Each changes nothing and leaves an event."""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.core.ids import new_id, now_ms
from app.models.user_verifier import UserVerifier
from app.user import passkeys
from tests.conftest import AccountCredentials
from tests.hosted.helpers import Browser, csrf
from tests.oidc.helpers import OidcSetup, make_setup

BASE = "http://testserver"


async def _reasons(pg: asyncpg.Pool, account_id: str) -> list[str]:
    rows = await pg.fetch("SELECT data->>'reason' AS reason FROM events WHERE account_id = $1 "
                          "AND type = 'user.verification.failed' ORDER BY id", account_id)
    return [r["reason"] for r in rows]


async def _login_page(http: httpx.AsyncClient, setup: OidcSetup) -> tuple[str, str]:
    b = Browser(http, setup)
    r = await http.get(b.authorize_url())
    url = urljoin(BASE, r.headers["location"])
    page = await http.get(url)
    ret = re.search(r'name="return" value="([^"]*)"', page.text).group(1)
    return csrf(page.text), ret


class TestDisabledPasskeys:
    async def test_a_disabled_passkey_posted_by_hand_is_refused(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        token, ret = await _login_page(http, setup)
        options = await http.post(f"{BASE}/{setup.issuer_id}/login/passkey/options",
                                  data={"csrf": token, "return": ret, "mode": "signin"})
        assert options.status_code == 200
        assert options.json()["userVerification"] == "required"
        await admin.issuer(setup.issuer_id).auth_methods.create({"type": "passkey", "enabled": False})
        login_page = await http.get(f"{BASE}/{setup.issuer_id}/login", params={"return": ret})
        assert "passkey-sign-in" not in login_page.text
        refused = await http.post(f"{BASE}/{setup.issuer_id}/login/passkey", data={
            "csrf": token, "credential": json.dumps({"id": "AAAA", "rawId": "AAAA"})})
        assert refused.status_code == 403
        again = await http.post(f"{BASE}/{setup.issuer_id}/login/passkey/options",
                                data={"csrf": token, "return": ret, "mode": "signin"})
        assert again.status_code == 403
        sessions = "SELECT count(*) FROM login_sessions WHERE user_id = $1"
        assert await pg.fetchval(sessions, setup.user_id) == 0
        assert "method_disabled" in await _reasons(pg, account.account_id)
        # Nor can a signed-in user register one.
        b = Browser(http, setup)
        await b.follow(await b.password())
        page = await http.get(f"{BASE}/{setup.issuer_id}/passkeys")
        assert 'id="passkey-create"' not in page.text
        r = await http.post(f"{BASE}/{setup.issuer_id}/login/passkey/register-options",
                            data={"csrf": token})
        assert r.status_code == 403


class TestCredentialsStayInTheirIssuer:
    async def test_another_issuers_credential_is_unknown(
            self, app: FastAPI, admin: AuthPIAdmin, setup: OidcSetup) -> None:
        other = await make_setup(admin)
        async with app.state.db.unit_of_work() as session:
            account_id = await _account(session, other.issuer_id)
            session.add(UserVerifier(
                id=new_id("vrf"), account_id=account_id, issuer_id=other.issuer_id, user_id=other.user_id,
                type="passkey", name="k", status="active", secret_encrypted="",
                credential={"public_key": "AAAA", "device_bound": True}, backup_codes=[], usage_count=0,
                created_at=now_ms(), credential_id="c3RvbGVu", sign_count=0))
        async with app.state.db.unit_of_work() as session:
            with pytest.raises(passkeys.PasskeyRefused) as refused:
                await passkeys.authenticate(
                    session, account_id=account_id, issuer_id=setup.issuer_id,
                    credential=json.dumps({"id": "c3RvbGVu", "rawId": "c3RvbGVu", "response": {}}),
                    challenge="AAAA", rp_id="testserver", origin="http://testserver", user_id=None)
        assert refused.value.reason == "unknown_credential"


async def _account(session, issuer_id: str) -> str:
    from sqlalchemy import select

    from app.models.issuer import Issuer
    return str(await session.scalar(select(Issuer.account_id).where(Issuer.id == issuer_id)))


class TestRpId:
    def test_ip_literals_have_no_rp_id(self) -> None:
        assert passkeys.rp_id_for("http://127.0.0.1:8000") is None
        assert passkeys.rp_id_for("http://[::1]:8000") is None
        assert passkeys.rp_id_for("https://login.acme.example") == "login.acme.example"
        assert passkeys.rp_id_for("http://localhost:8000") == "localhost"
