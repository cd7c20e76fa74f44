"""Two `authpi serve` processes on one database: revocation is immediate on both; batched events
survive a clean stop; no secret or hash reaches a log line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.api_key.conftest import OrgRef, make_org, set_org
from tests.conftest import TEST_SECRET_KEY, AccountCredentials, new_account
from tests.fixtures.server import free_port

AUTHPI = str(Path(sys.executable).with_name("authpi"))


class ServeProcess:
    def __init__(self, database_url: str, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "AUTHPI_DATABASE_URL": database_url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY,
               "AUTHPI_ENV": "test", "AUTHPI_LOG_LEVEL": "debug",
               **{f"AUTHPI_{k.upper()}": v for k, v in settings.items()}}
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([AUTHPI, "serve", "--port", str(self.port)], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180  # a loaded machine imports the app slowly
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"authpi serve exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("authpi serve did not start")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture(scope="module")
def servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServeProcess]]:
    logs = tmp_path_factory.mktemp("serve-logs")
    procs = [ServeProcess(database_url, logs / f"serve-{i}.log") for i in range(2)]
    yield procs
    for p in procs:
        p.stop()


SECRETS: list[str] = []


async def setup_key(app: FastAPI, servers: list[ServeProcess], scopes: list[str] | None = None
                    ) -> tuple[AccountCredentials, OrgRef, str, str]:
    account = await new_account(app, "xproc")
    SECRETS.append(account.secret)
    org = await make_org(app, account.account_id)
    async with httpx.AsyncClient(base_url=servers[0].url, auth=account.basic) as c:
        r = await c.post(f"/v1/accounts/{account.account_id}/issuers/{org.issuer_id}/organizations/"
                         f"{org.org_id}/api-keys",
                         json={"type": "api_key", "name": "k",
                               "restrictions": {"scopes": scopes or ["a:read"]}})
    assert r.status_code == 201, r.text
    key_id, secret = r.json()["data"]["id"], r.json()["data"]["secret_plain"]
    SECRETS.append(secret)
    for s in servers:  # warm both processes (cold, then served from cache)
        for _ in range(2):
            assert httpx.get(s.url + "/v1/me", auth=(key_id, secret)).status_code == 200
    return account, org, key_id, secret


def me(server: ServeProcess, key_id: str, secret: str) -> httpx.Response:
    return httpx.get(server.url + "/v1/me", auth=(key_id, secret))


class TestCrossProcessRevocation:
    @pytest.mark.parametrize("action", ["block", "revoke"])
    async def test_next_request_on_the_other_process_fails(self, app: FastAPI, servers: list[ServeProcess],
                                                           action: str):
        account, _, key_id, secret = await setup_key(app, servers)
        a, b = servers
        r = httpx.post(f"{a.url}/v1/accounts/{account.account_id}/api-keys/{key_id}/{action}",
                       auth=account.basic)
        assert r.status_code == 200
        assert me(b, key_id, secret).status_code == 401
        assert me(a, key_id, secret).status_code == 401

    async def test_scope_change_is_seen_by_the_other_process(self, app: FastAPI, servers: list[ServeProcess]):
        account, _, key_id, secret = await setup_key(app, servers)
        a, b = servers
        r = httpx.patch(f"{a.url}/v1/accounts/{account.account_id}/api-keys/{key_id}",
                        json={"restrictions": {"scopes": ["b:write"]}}, auth=account.basic)
        assert r.status_code == 200
        assert me(b, key_id, secret).json()["data"]["organizations"][0]["scopes"] == ["b:write"]

    async def test_org_suspension_is_seen_by_both(self, app: FastAPI, servers: list[ServeProcess]):
        _, org, key_id, secret = await setup_key(app, servers)
        await set_org(app, org, status="suspended")
        assert me(servers[1], key_id, secret).status_code == 401
        assert me(servers[0], key_id, secret).status_code == 401
        await set_org(app, org, status="active")
        assert me(servers[1], key_id, secret).status_code == 200


class TestBatchedEventsSurviveShutdown:
    async def test_sigterm_right_after_n_verifications_loses_none(
            self, app: FastAPI, database_url: str, servers: list[ServeProcess], pg: asyncpg.Pool,
            tmp_path: Path):
        _, _, key_id, secret = await setup_key(app, servers[:1])
        # Batches 1 s apart: the last one is surely still queued when SIGTERM arrives.
        server = ServeProcess(database_url, tmp_path / "serve-sigterm.log",
                              event_batch_interval_seconds="1.0")
        n = 200
        with httpx.Client(base_url=server.url, auth=(key_id, secret)) as c:
            for _ in range(n):
                assert c.get("/v1/me").status_code == 200
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
        assert server.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.output()
        # 2 verifications during setup on the first server, n on the stopped one.
        count = await pg.fetchval("SELECT count(*) FROM events WHERE type = 'api-key.verified' "
                                  "AND subject->>'id' = $1", key_id)
        assert count == n + 2
        assert secret not in server.output()


class TestNoSecretsInLogs:
    async def test_server_output_holds_no_secret_or_hash(self, app: FastAPI, servers: list[ServeProcess]):
        # Besides the keys of the tests above, one more: verified, refused, rotated on both servers.
        account, _, key_id, secret = await setup_key(app, servers)
        for s in servers:
            assert me(s, key_id, secret + "x").status_code == 401
        r = httpx.post(f"{servers[0].url}/v1/accounts/{account.account_id}/api-keys/{key_id}/rotate",
                       auth=account.basic)
        SECRETS.append(r.json()["data"]["secret_plain"])
        for s in servers:
            out = s.output()
            assert "$argon2" not in out
            for known in SECRETS:
                assert known not in out
