"""No TOTP seed, backup code or device-cookie secret in any response after enrolment, in any
event, or in any log line."""

from __future__ import annotations

import logging
import re

import asyncpg
import httpx
import pyotp
import pytest
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.hosted.helpers import Browser, csrf, next_code
from tests.oidc.helpers import OidcSetup

BASE = "http://testserver"


async def test_secrets_never_leak(admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
                                  http: httpx.AsyncClient, pg: asyncpg.Pool,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await admin.issuer(setup.issuer_id).organizations.update(
        setup.org_id, {"security": {"mfa_required": True}})
    browser = Browser(http, setup)
    await browser.password()
    page = await http.get(f"{BASE}/{setup.issuer_id}/login/enrol")
    seed = re.search(r'<code id="secret">([A-Z2-7]+)</code>', page.text).group(1)
    done = await http.post(f"{BASE}/{setup.issuer_id}/login/enrol",
                           data={"csrf": csrf(page.text), "code": pyotp.TOTP(seed).now()})
    codes = re.findall(r"<li><code>([a-z2-7]{4}-[a-z2-7]{4})</code></li>", done.text)
    assert len(codes) == 10
    # Sign in again with a backup code and trust the device.
    async with httpx.AsyncClient(transport=http._transport, base_url=BASE, headers={"Origin": BASE}) as other:
        b = Browser(other, setup)
        await b.password()
        r = await b.second_factor(codes[0], trust=True)
        device_cookie = r.cookies.get(f"authpi_device_{setup.issuer_id}") or ""
        await b.tokens(await b.follow(r))
        wrong = await Browser(other, setup).password(prompt="login")
        assert wrong.status_code == 303
    secrets = [seed, seed.lower(), *codes, *(c.replace("-", "") for c in codes),
               device_cookie.partition(".")[2]]
    assert all(secrets)
    # Every response the admin API gives about the user afterwards.
    user = admin.issuer(setup.issuer_id).user(setup.user_id)
    answers = [str([v.model_dump() for v in (await user.verifiers.list()).data]),
               str([d.model_dump() for d in (await user.trusted_devices.list()).data]),
               str((await admin.issuer(setup.issuer_id).users.get(setup.user_id)).model_dump()),
               (await http.get(f"{BASE}/{setup.issuer_id}/login/enrol")).text,
               (await http.get(f"{BASE}/{setup.issuer_id}/login/second-factor")).text]
    for v in (await user.verifiers.list()).data:
        answers.append(str((await user.verifiers.get(v.id)).model_dump()))
    events = str([dict(r) for r in await pg.fetch("SELECT * FROM events WHERE account_id = $1",
                                                  account.account_id)])
    rows = str([dict(r) for r in await pg.fetch("SELECT * FROM user_verifiers WHERE user_id = $1",
                                                setup.user_id)])
    rows += str([dict(r) for r in await pg.fetch(
        "SELECT * FROM user_trusted_devices WHERE user_id = $1", setup.user_id)])
    logs = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for secret in secrets:
        for where, text in (("responses", "\n".join(answers)), ("events", events), ("logs", logs),
                            ("stored rows", rows)):
            assert secret not in text, f"a secret reached the {where}"
    assert next_code(seed)  # the seed was real
