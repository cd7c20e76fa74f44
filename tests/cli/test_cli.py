"""The `authpi` command as a user runs it (subprocesses against the test database)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.server import free_port


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


class TestAccountCreate:
    def test_prints_exactly_three_exports(self, database_url: str):
        result = run_cli("account", "create", "--name", "acme", env={"AUTHPI_DATABASE_URL": database_url})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert [line.split("=")[0] for line in lines] == [
            "export AUTHPI_ACCOUNT_ID", "export AUTHPI_KEY_ID", "export AUTHPI_KEY_SECRET"]
        assert re.fullmatch(r"export AUTHPI_KEY_ID=key_[0-9a-z]{26}", lines[1])
        secret = lines[2].split("=", 1)[1]
        # Shown this once: never on stderr (logs).
        assert secret not in result.stderr


class TestServe:
    def test_production_refuses_the_embedded_database(self, tmp_path):
        env = {"AUTHPI_ENV": "production", "AUTHPI_DATA_DIR": str(tmp_path), "AUTHPI_SECRET_KEY": "k" * 40}
        env_clean = {k: v for k, v in os.environ.items() if k != "AUTHPI_DATABASE_URL"}
        result = subprocess.run([sys.executable, "-m", "app.cli", "serve"], env={**env_clean, **env},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert "AUTHPI_DATABASE_URL is required" in result.stderr

    def test_serves_on_the_given_port(self, database_url: str, tmp_path):
        port = free_port()
        # The suite's server key, and no relay: this process shares the test database with others.
        env = {**os.environ, "AUTHPI_DATABASE_URL": database_url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY,
               "AUTHPI_WEBHOOKS_RELAY_ENABLED": "false", "AUTHPI_DATA_DIR": str(tmp_path)}
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            ready = None
            for _ in range(150):
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert ready is not None
            assert ready.status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=30)
