"""Nothing secret or personal reaches the log, whatever fails (issue 9, item 1)."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from fastapi import FastAPI

from app.account.service import create_account
from app.api_key.service import create_api_key
from app.core.logredact import redact
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import create_issuer

ARGON2 = re.compile(r"\$argon2id?\$")
PASSWORD = "correct-horse-battery-staple-42"
USERNAME = "ada.lovelace.secretive"


def assert_clean(text: str, *secrets: str) -> None:
    assert not ARGON2.search(text), "an argon2 hash reached the log"
    for secret in secrets:
        assert secret not in text, f"{secret!r} reached the log"


class TestFailingInserts:
    async def test_a_failing_key_insert_logs_neither_hash_nor_secret(
            self, app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
        """A direct failing insert through the service layer: the driver refuses the NUL byte."""
        caplog.set_level(logging.DEBUG)
        async with app.state.db.unit_of_work() as session:
            account, _, onboarding_secret = await create_account(session, "log-test")
        secret = "sk_" + "x" * 40
        with pytest.raises(Exception) as caught:  # noqa: PT011 - any database error
            async with app.state.db.unit_of_work() as session:
                await create_api_key(session, account_id=account.id, owner_kind="account",
                                     issuer_id="authpi", org_id=account.org_id, name="bad\x00name",
                                     restrictions={"scopes": ["*:**"]}, auth=None, secret=secret)
        # What any handler would log about it: the message and the traceback.
        logging.getLogger("authpi.errors").exception("unhandled error: %s", caught.value)
        text = caplog.text
        assert "unhandled error" in text
        assert_clean(text, secret, onboarding_secret)
        # The exception itself no longer carries the statement's parameters.
        assert not ARGON2.search(str(caught.value))

    async def test_a_failing_user_create_over_http_logs_no_password_hash_nor_username(
            self, app: FastAPI, account: AccountCredentials, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        issuer_id = await create_issuer(app, account.account_id)
        # As a server would: an exception in the app becomes an answer, not a client-side raise.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            r = await client.post(f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/users",
                                  auth=account.basic,
                                  json={"username_type": "username", "username": USERNAME,
                                        "password": PASSWORD,
                                        "profile": {"first_name": "Ada\x00", "last_name": "Lovelace"}})
        assert r.status_code != 201, r.text
        assert_clean(caplog.text, PASSWORD, USERNAME, account.secret)


class TestRedactionFilter:
    @pytest.mark.parametrize("leak", [
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "sk_" + "A1b2C3d4" * 5,
        "agts_" + "Zz09" * 10,
        "whsec_" + "QUJDREVGR0hJSktMTU5PUA==",
        "rt_" + "r" * 30,
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl",
        "Bearer abcdefghijklmnop1234",
        "Key (username)=(ada.lovelace.secretive) already exists",
        "Failing row contains (usr_1, ada.lovelace.secretive, x)",
    ])
    def test_masks(self, leak: str, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        logging.getLogger("authpi.anything").warning("it failed: %s", leak)
        assert leak not in caplog.text
        assert "ada.lovelace.secretive" not in caplog.text
        assert "[redacted]" in caplog.text

    def test_authorization_header(self) -> None:
        out = redact("headers: {'authorization': 'Basic a2V5OnNlY3JldA=='}")
        assert "a2V5OnNlY3JldA" not in out
