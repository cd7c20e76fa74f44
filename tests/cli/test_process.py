"""The `authpi` process: clean stops (SIGTERM, SIGINT), a killed run recovered, configuration
errors as one line and exit code 2, --version, --workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.database import ROOT
from tests.fixtures.server import free_port

CLI = [sys.executable, "-m", "app.cli"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AUTHPI_") and not k.startswith("OTEL_")}
    env.update({"AUTHPI_DATA_DIR": str(data_dir), **extra})
    return env


def _serve(env: dict[str, str], port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "serve", "--port", str(port), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def _postgres_for(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and any(str(pgdata) in part for part in cmdline):
            found.append(proc)
    return found


def _handles(pgdata: Path) -> list[int]:
    path = pgdata / ".handle_pids.json"
    return json.loads(path.read_text()) if path.exists() else []


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: a concurrent pytest run resets /tmp/pytest-of-<user> to 0700, which
    # locks the embedded server's own user out of its files.
    path = ROOT / ".authpi" / "tmp" / uuid.uuid4().hex[:12]
    yield path
    # Whatever a failed test left behind.
    for proc in _postgres_for(path / "pgdata"):
        proc.kill()
    shutil.rmtree(path, ignore_errors=True)


class TestCleanStop:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_a_signal_drains_flushes_and_stops_the_embedded_postgres(self, data_dir: Path, sig: int):
        port = free_port()
        env = _env(data_dir)
        proc = _serve(env, port)
        pgdata = data_dir / "pgdata"
        try:
            _wait_ready(port, proc)
            created = subprocess.run([*CLI, "account", "create", "--name", "acme"], env=env,
                                     capture_output=True, text=True, timeout=120)
            assert created.returncode == 0, created.stderr
            exports = dict(line.removeprefix("export ").split("=", 1) for line in created.stdout.splitlines())
            auth = (exports["AUTHPI_KEY_ID"], exports["AUTHPI_KEY_SECRET"])
            base = f"http://127.0.0.1:{port}"
            # Verified twice: the second is warm and its metered event waits in the batcher.
            for _ in range(2):
                assert httpx.get(base + "/v1/me", auth=auth, timeout=10).status_code == 200
            assert len(_postgres_for(pgdata)) >= 1

            # A request in flight when the signal arrives: its body is still being sent.
            answers: list[int | str] = []
            sending = threading.Event()

            def slow_body() -> Iterator[bytes]:
                yield b'{"name": '
                sending.set()  # the connection is up and the request has begun
                time.sleep(1.5)
                yield b'"late"}'

            def in_flight() -> None:
                try:
                    response = httpx.post(f"{base}/v1/accounts/{exports['AUTHPI_ACCOUNT_ID']}/issuers",
                                          content=slow_body(), auth=auth, timeout=30,
                                          headers={"content-type": "application/json"})
                    answers.append(response.status_code)
                except httpx.HTTPError as exc:
                    answers.append(repr(exc))

            thread = threading.Thread(target=in_flight)
            thread.start()
            assert sending.wait(timeout=30)
            time.sleep(0.2)
            proc.send_signal(sig)
            thread.join(timeout=30)
            assert proc.wait(timeout=60) == 0
            assert answers == [201]
        finally:
            _stop(proc)
        output = proc.stdout.read() if proc.stdout else ""
        # Known and left (closing note): SQLAlchemy's pool logs the CancelledError of a connection
        # it was closing when shutdown cancelled its task. Any other traceback fails the test.
        def known(line: str) -> bool:
            return "sqlalchemy/pool/base.py" in line and line.rstrip().endswith('CancelledError"}')
        unexplained = [line for line in output.splitlines() if "Traceback" in line and not known(line)]
        assert unexplained == []
        assert _postgres_for(pgdata) == []
        assert _handles(pgdata) == []

        # Nothing acknowledged was lost: the batched verification and the late issuer are there.
        check = subprocess.run([sys.executable, "-c", (
            "import asyncio, asyncpg, sys\n"
            "from pathlib import Path\n"
            "from app.core.db import start_embedded_postgres\n"
            "url = start_embedded_postgres(Path(sys.argv[1]))\n"
            "async def main():\n"
            "    conn = await asyncpg.connect(url)\n"
            "    print(await conn.fetchval(\"SELECT count(*) FROM events WHERE type = 'api-key.verified' "
            "AND account_id = $1\", sys.argv[2]),\n"
            "          await conn.fetchval(\"SELECT count(*) FROM issuers WHERE account_id = $1\",\n"
            "                              sys.argv[2]))\n"
            "    await conn.close()\n"
            "asyncio.run(main())\n"), str(data_dir), exports["AUTHPI_ACCOUNT_ID"]],
            env=env, capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stderr
        verified, issuers = (int(x) for x in check.stdout.split())
        assert verified == 2
        assert issuers == 1
        assert _postgres_for(pgdata) == []

    def test_a_killed_run_is_recovered_by_the_next_start(self, data_dir: Path):
        env = _env(data_dir)
        pgdata = data_dir / "pgdata"
        port = free_port()
        first = _serve(env, port)
        try:
            _wait_ready(port, first)
            first.kill()
            first.wait(timeout=30)
        finally:
            _stop(first)
        # SIGKILL: the database outlives it and its stale handle stays in the file.
        assert len(_postgres_for(pgdata)) >= 1
        assert first.pid in _handles(pgdata)

        second = _serve(env, port)
        try:
            _wait_ready(port, second)
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=60) == 0
        finally:
            _stop(second)
        assert _postgres_for(pgdata) == []
        assert _handles(pgdata) == []


class TestWorkers:
    def test_serve_with_two_workers_answers_and_stops(self, database_url: str, tmp_path: Path):
        port = free_port()
        env = _env(tmp_path, AUTHPI_DATABASE_URL=database_url, AUTHPI_SECRET_KEY=TEST_SECRET_KEY,
                   AUTHPI_WEBHOOKS_RELAY_ENABLED="false")
        proc = _serve(env, port, "--workers", "2")
        try:
            _wait_ready(port, proc)
            children = psutil.Process(proc.pid).children(recursive=True)
            assert len([c for c in children if "python" in c.name().lower()]) >= 2
            for _ in range(10):
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            _stop(proc)
        # The workers (and multiprocessing's helper) are gone with the parent.
        _gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []

    def test_zero_workers_is_refused(self, tmp_path: Path):
        result = subprocess.run([*CLI, "serve", "--workers", "0"], env=_env(tmp_path),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert "workers" in result.stderr


class TestConfigErrors:
    @pytest.mark.parametrize(("env", "message"), [
        ({"AUTHPI_PORT": "eighty"}, "AUTHPI_PORT is invalid"),
        ({"AUTHPI_ENV": "production", "AUTHPI_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:5/x"},
         "AUTHPI_SECRET_KEY is required"),
        ({"AUTHPI_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x"}, "cannot reach the database"),
        ({"AUTHPI_DATABASE_URL": "mysql://u:hunter2@db/x"}, "AUTHPI_DATABASE_URL must be"),
        ({"AUTHPI_PUBLIC_URL": "id.example.com"}, "AUTHPI_PUBLIC_URL must be"),
    ])
    @pytest.mark.parametrize("command", ["serve", "migrate"])
    def test_one_line_and_exit_code_2(self, tmp_path: Path, env: dict[str, str], message: str, command: str):
        result = subprocess.run([*CLI, command], env=_env(tmp_path, **env),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("authpi: ")
        assert message in lines[0]
        assert "hunter2" not in result.stderr
        # Refused before anything started: no embedded database was created.
        assert not (tmp_path / "pgdata").exists()

    def test_version(self, tmp_path: Path):
        result = subprocess.run([*CLI, "--version"], env=_env(tmp_path), capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0
        assert result.stdout.strip().startswith("authpi 0.")
