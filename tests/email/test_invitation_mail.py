"""Invitation emails through the outbox to a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError

from app.core.crypto import hmac_sha256
from app.email.render import render_email
from app.email.service import Mailer, build_message
from app.email.transport import check_email_settings, parse_smtp_url, transmit
from app.main import create_app
from tests.conftest import TEST_SECRET_KEY, AccountCredentials, count_rows, make_settings
from tests.fixtures.smtp import SmtpSink

LINK = re.compile(r"http://testserver/(i_[a-z0-9]+)/invitation/([A-Za-z0-9_-]+)")


async def new_org(admin: AuthPIAdmin, issuer_id: str, **body: object) -> str:
    return (await admin.issuer(issuer_id).organizations.create({"name": "Globex", **body})).id


async def wait_sent(admin: AuthPIAdmin, issuer_id: str, org_id: str, inv_id: str,
                    after: int | None = None) -> int:
    for _ in range(200):
        got = await admin.issuer(issuer_id).organization(org_id).invitations.get(inv_id)
        if got.last_email_sent_at and (after is None or got.last_email_sent_at > after):
            return got.last_email_sent_at
        await asyncio.sleep(0.05)
    raise AssertionError("last_email_sent_at was not set")


class TestInvitationEmail:
    async def test_create_sends_one_branded_mail_with_a_hashed_single_link(
            self, admin: AuthPIAdmin, issuer_id: str, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials):
        await pg.execute("""UPDATE issuers SET settings = settings || '{"branding": {"name": "Acme Identity",
                            "primary_color": "#0055aa"}}'::jsonb WHERE id = $1""", issuer_id)
        org_id = await new_org(admin, issuer_id)
        inv = await admin.issuer(issuer_id).organization(org_id).invitations.create(
            {"email": "grace.create@globex.example", "scopes": ["invoices:read"],
             "message": "Welcome <b>aboard</b>"})
        [mail] = await asyncio.to_thread(smtp.wait_for, "grace.create@globex.example")
        sent_at = await wait_sent(admin, issuer_id, org_id, inv.id)
        row = await pg.fetchrow("SELECT * FROM outbox WHERE ref_id = $1", inv.id)
        assert mail.message_id == row["message_id"]
        assert row["status"] == "sent"
        assert row["sent_at"] == sent_at
        assert row["payload_encrypted"] is None  # the link's token is gone from the database
        assert "Globex" in mail.message["Subject"]
        assert mail.message["From"] == make_settings().email_from
        text, html = mail.part("plain"), mail.part("html")
        found = LINK.search(text)
        assert found
        assert found.group(1) == issuer_id
        token = found.group(2)
        assert len(token) >= 22  # >= 128 bits, base64url
        assert token in html
        assert "Acme Identity" in html
        assert "#0055aa" in html
        assert "Welcome &lt;b&gt;aboard&lt;/b&gt;" in html  # escaped in HTML, plain in text
        assert "Welcome <b>aboard</b>" in text
        stored = await pg.fetchval("SELECT token_hash FROM invitations WHERE id = $1", inv.id)
        assert stored == hmac_sha256(TEST_SECRET_KEY, f"invitation:{token}")
        types = await pg.fetch("SELECT type, data FROM events WHERE account_id = $1 AND type LIKE 'email.%'",
                               account.account_id)
        assert [t["type"] for t in types] == ["email.sent"]
        assert token not in str(types[0]["data"])

    async def test_resend_sends_a_new_link_and_the_old_one_is_replaced(
            self, admin: AuthPIAdmin, issuer_id: str, smtp: SmtpSink, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        invitations = admin.issuer(issuer_id).organization(org_id).invitations
        inv = await invitations.create({"email": "grace.resend@globex.example", "scopes": ["a:read"]})
        await asyncio.to_thread(smtp.wait_for, "grace.resend@globex.example")
        first_sent = await wait_sent(admin, issuer_id, org_id, inv.id)
        first_hash = await pg.fetchval("SELECT token_hash FROM invitations WHERE id = $1", inv.id)
        await invitations.resend(inv.id)
        first, second = await asyncio.to_thread(smtp.wait_for, "grace.resend@globex.example", 2)
        assert first.message_id != second.message_id
        token = LINK.search(second.part("plain")).group(2)
        assert LINK.search(first.part("plain")).group(2) != token
        assert await wait_sent(admin, issuer_id, org_id, inv.id, after=first_sent) > first_sent
        new_hash = await pg.fetchval("SELECT token_hash FROM invitations WHERE id = $1", inv.id)
        assert new_hash != first_hash
        assert new_hash == hmac_sha256(TEST_SECRET_KEY, f"invitation:{token}")

    async def test_a_recipient_refused_for_good_is_email_failed_once(
            self, admin: AuthPIAdmin, issuer_id: str, pg: asyncpg.Pool, account: AccountCredentials):
        org_id = await new_org(admin, issuer_id)
        inv = await admin.issuer(issuer_id).organization(org_id).invitations.create(
            {"email": "refused.grace@globex.example", "scopes": ["a:read"]})
        for _ in range(200):
            row = await pg.fetchrow("SELECT * FROM outbox WHERE ref_id = $1", inv.id)
            if row["status"] != "pending":
                break
            await asyncio.sleep(0.05)
        assert (row["status"], row["attempts"]) == ("failed", 1)  # 5xx: no retry
        assert row["payload_encrypted"] is None
        assert "550" in row["last_error"]
        events = await pg.fetch("SELECT type, data FROM events WHERE account_id = $1 AND type LIKE 'email.%'",
                                account.account_id)
        assert [e["type"] for e in events] == ["email.failed"]
        assert '"final": true' in events[0]["data"]
        got = await admin.issuer(issuer_id).organization(org_id).invitations.get(inv.id)
        assert got.last_email_sent_at is None

    async def test_a_refused_create_sends_nothing(self, admin: AuthPIAdmin, issuer_id: str,
                                                  smtp: SmtpSink, pg: asyncpg.Pool,
                                                  account: AccountCredentials):
        org_id = await new_org(admin, issuer_id, invitation_enabled=False)
        before = await count_rows(pg, "outbox", account.account_id)
        with pytest.raises(ConflictError):
            await admin.issuer(issuer_id).organization(org_id).invitations.create(
                {"email": "nobody.disabled@globex.example"})
        await asyncio.sleep(0.5)
        assert smtp.to("nobody.disabled@globex.example") == []
        assert await count_rows(pg, "outbox", account.account_id) == before


class TestProductionWithoutSmtp:
    async def test_invitations_are_refused_clearly_and_nothing_changes(
            self, database_url: str, account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        settings = make_settings(env="production", smtp_url=None, webhooks_relay_enabled=False)
        prod = create_app(settings, database_url=database_url)
        async with prod.router.lifespan_context(prod):
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=prod), base_url="http://testserver")
            sdk = AuthPIAdmin(api_key=account.basic, base_url="http://testserver", http_client=http)
            org_id = await new_org(sdk, issuer_id)
            before = (await count_rows(pg, "invitations", account.account_id),
                      await count_rows(pg, "outbox", account.account_id))
            resp = await http.post(f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/organizations/"
                                   f"{org_id}/invitations", json={"email": "x@globex.example"},
                                   auth=account.basic)
            await http.aclose()
        assert resp.status_code == 409
        assert "AUTHPI_SMTP_URL" in resp.json()["error_description"]
        assert (await count_rows(pg, "invitations", account.account_id),
                await count_rows(pg, "outbox", account.account_id)) == before


class TestDevelopmentMailbox:
    async def test_without_smtp_each_message_is_an_eml_file_and_the_log_names_only_the_file(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture):
        settings = make_settings(env="development", smtp_url=None, data_dir=tmp_path)
        mailer = Mailer(settings, TEST_SECRET_KEY)
        assert mailer.problem() is None
        rendered = render_email("invitation", {"brand": {"name": "Acme", "primary_color": "#222222",
                                                         "text_color": "#ffffff", "logo_url": None},
                                               "organization_name": "Globex", "inviter_name": None,
                                               "message": None, "expires": "2026-12-31",
                                               "link": "http://x/i_1/invitation/SECRETTOKEN"})

        class Row:
            id = "obx_test1"
            message_id = "<obx_test1@testserver>"
            created_at = 1_700_000_000_000

        message = build_message(settings, Row(), {"to": "ada@example.com", "subject": rendered.subject,
                                                  "text": rendered.text, "html": rendered.html})
        with caplog.at_level(logging.INFO, logger="authpi.email"):
            await transmit(settings, message, "obx_test1")
            await transmit(settings, message, "obx_test1")  # a retry rewrites the same file
        files = list((tmp_path / "mail").glob("*.eml"))
        assert [f.name for f in files] == ["obx_test1.eml"]
        assert b"SECRETTOKEN" in files[0].read_bytes()
        assert "obx_test1.eml" in caplog.text
        assert "SECRETTOKEN" not in caplog.text


class TestSettings:
    def test_smtp_urls(self):
        plain = parse_smtp_url("smtp://u%40x:p%3Ass@mail.example:2525?starttls=required")
        assert (plain.hostname, plain.port) == ("mail.example", 2525)
        assert (plain.use_tls, plain.start_tls) == (False, True)
        assert (plain.username, plain.password) == ("u@x", "p:ss")
        assert parse_smtp_url("smtp://mail.example").start_tls is None  # opportunistic
        assert parse_smtp_url("smtp://mail.example?starttls=false").start_tls is False
        tls = parse_smtp_url("smtps://mail.example")
        assert (tls.port, tls.use_tls, tls.start_tls) == (465, True, False)

    @pytest.mark.parametrize(("url", "fragment"), [
        ("http://mail.example", "must be smtp://"),
        ("smtp://mail.example?starttls=maybe", "starttls must be"),
        ("smtps://mail.example?starttls=required", "TLS already"),
        ("smtp://mail.example?tls=1", "unknown options"),
    ])
    def test_bad_smtp_urls_are_configuration_errors_without_the_password(self, url: str, fragment: str):
        problem = check_email_settings(make_settings(smtp_url=url.replace("//", "//u:hunter2@")))
        assert problem
        assert fragment in problem
        assert "hunter2" not in problem

    def test_bad_from(self):
        assert "AUTHPI_EMAIL_FROM" in (check_email_settings(make_settings(email_from="nobody")) or "")

    def test_templates_can_be_overridden_file_by_file(self, tmp_path: Path):
        (tmp_path / "invitation.subject.txt").write_text("Custom: {{ organization_name }}")
        context = {"brand": {"name": "Acme", "primary_color": "#222222", "text_color": "#fff",
                             "logo_url": None}, "organization_name": "Globex", "message": None,
                   "inviter_name": None, "link": "http://x", "expires": "soon"}
        custom = render_email("invitation", context, tmp_path)
        assert custom.subject == "Custom: Globex"
        assert custom.text == render_email("invitation", context).text
