"""SIGKILL between a committed invitation and its send: after a restart the mail arrives once, with
the Message-ID the outbox assigned. `authpi serve` processes on a database of their own (no
in-process relay competes), mailing the tests' real SMTP server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin

from app.account.service import create_account
from app.core.db import Database, to_asyncpg_dsn
from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.database import migrated_database
from tests.fixtures.server import free_port
from tests.fixtures.smtp import SmtpSink

AUTHPI = str(Path(sys.executable).parent / "authpi")


# A database of its own: no in-process relay competes with the server processes here.
crash_database_url = pytest.fixture(scope="module")(migrated_database)


def start_server(url: str, port: int, smtp_url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY,
           "AUTHPI_ENV": "test", "AUTHPI_PORT": str(port), "AUTHPI_SMTP_URL": smtp_url,
           "AUTHPI_PUBLIC_URL": f"http://127.0.0.1:{port}", "AUTHPI_DATA_DIR": str(data_dir),
           "AUTHPI_WEBHOOKS_POLL_INTERVAL_SECONDS": "0.5"}
    with (data_dir / "serve.log").open("ab") as log:
        proc = subprocess.Popen([AUTHPI, "serve"], env=env, stdout=log, stderr=log)
    deadline = time.time() + 240  # a loaded machine: imports alone took 15 s
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "authpi serve exited"
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("authpi serve did not become ready: " + (data_dir / "serve.log").read_text()[-3000:])


async def test_sigkill_between_commit_and_send_then_restart_delivers_once(
        crash_database_url: str, smtp: SmtpSink, tmp_path: Path):
    db = Database(crash_database_url, pool_size=2)
    async with db.unit_of_work() as session:
        account, key, secret = await create_account(session, "crash-test")
    await db.dispose()
    port = free_port()
    server = start_server(crash_database_url, port, smtp.url, tmp_path)
    pg = await asyncpg.connect(to_asyncpg_dsn(crash_database_url))
    try:
        async with AuthPIAdmin(api_key=(key.id, secret), base_url=f"http://127.0.0.1:{port}") as admin:
            issuer = await admin.issuers.create({"name": "crash"})
            org = await admin.issuer(issuer.id).organizations.create({"name": "Globex"})
            smtp.hold()  # the send will be in flight, its message not yet transmitted
            inv = await admin.issuer(issuer.id).organization(org.id).invitations.create(
                {"email": "grace.crash@globex.example", "scopes": ["invoices:read"]})
        assert await asyncio.to_thread(smtp.in_flight.wait, 20)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        smtp.release()
        row = await pg.fetchrow("SELECT * FROM outbox WHERE ref_id = $1", inv.id)
        # Committed with the invitation; the killed attempt left no trace (its transaction died).
        assert (row["status"], row["attempts"]) == ("pending", 0)
        assert row["payload_encrypted"] is not None
        assert smtp.to("grace.crash@globex.example") == []

        server = start_server(crash_database_url, port, smtp.url, tmp_path)
        [mail] = await asyncio.to_thread(smtp.wait_for, "grace.crash@globex.example")
        assert mail.message_id == row["message_id"] == f"<{row['id']}@127.0.0.1>"
        await asyncio.sleep(1.5)  # a poll interval or three: no second copy
        assert len(smtp.to("grace.crash@globex.example")) == 1
        for _ in range(100):
            after = await pg.fetchrow("SELECT * FROM outbox WHERE id = $1", row["id"])
            if after["status"] == "sent":
                break
            await asyncio.sleep(0.05)
        assert (after["status"], after["attempts"]) == ("sent", 1)
        assert after["payload_encrypted"] is None
        assert await pg.fetchval("SELECT last_email_sent_at FROM invitations WHERE id = $1", inv.id) \
            == after["sent_at"]
        assert await pg.fetchval("SELECT count(*) FROM events WHERE type = 'email.sent' AND account_id = $1",
                                 account.id) == 1
    finally:
        smtp.release()
        await pg.close()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
