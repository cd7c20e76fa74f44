"""`authpi serve` with no AUTHPI_DATABASE_URL: the embedded PostgreSQL, shared by every process that
uses the same AUTHPI_DATA_DIR (a second server, `account create`) while the first one runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import free_port


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTHPI_DATABASE_URL", "AUTHPI_SECRET_KEY")}
    env["AUTHPI_DATA_DIR"] = str(data_dir)
    return env


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                            env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_ready(port: int) -> httpx.Response:
    for _ in range(300):
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "authpi-data"


class TestEmbeddedDatabase:
    def test_two_servers_and_the_cli_share_one_embedded_database(self, data_dir: Path):
        port_a, port_b = free_port(), free_port()
        first = _serve(data_dir, port_a)
        second = None
        try:
            assert _wait_ready(port_a).status_code == 200
            created = subprocess.run([sys.executable, "-m", "app.cli", "account", "create", "--name", "acme"],
                                     env=_env(data_dir), capture_output=True, text=True, timeout=120)
            assert created.returncode == 0, created.stderr
            exports = dict(line.removeprefix("export ").split("=", 1) for line in created.stdout.splitlines())
            second = _serve(data_dir, port_b)
            assert _wait_ready(port_b).status_code == 200
            auth = (exports["AUTHPI_KEY_ID"], exports["AUTHPI_KEY_SECRET"])
            for port in (port_a, port_b):
                me = httpx.get(f"http://127.0.0.1:{port}/v1/me", auth=auth, timeout=10)
                assert me.status_code == 200
                assert me.json()["data"]["accounts"][0]["account_id"] == exports["AUTHPI_ACCOUNT_ID"]
        finally:
            for proc in (second, first):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=60)
        output = first.stdout.read() if first.stdout else ""
        assert "EMBEDDED PostgreSQL" in output
        # Both roles were made: the server runs as authpi_server, not as the migrating owner.
        assert "trigger alone" not in output
        # The secret key was generated once and kept for every process of this data dir.
        assert (data_dir / "secret.key").exists()
