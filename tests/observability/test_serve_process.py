"""`authpi serve` as deployed: JSON log lines on stderr, console lines on request, and
OpenTelemetry spans when the standard OTEL_* variables ask for them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.server import free_port


def _run_serve(database_url: str, tmp_path: Path, **extra: str) -> tuple[str, str, list[httpx.Response]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHPI_", "OTEL_"))}
    env.update({"AUTHPI_DATABASE_URL": database_url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY,
                "AUTHPI_WEBHOOKS_RELAY_ENABLED": "false", "AUTHPI_DATA_DIR": str(tmp_path), **extra})
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    responses = []
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        wrong = ("key_01jnotarealkeynotarealkeyx", "sk_wrong-secret")
        responses.append(httpx.get(base + "/v1/me", auth=wrong,
                                   headers={"X-Request-Id": "req-serve-1"}, timeout=10))
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return stdout, stderr, responses


def test_json_logs_and_access_line(database_url: str, tmp_path: Path):
    _stdout, stderr, responses = _run_serve(database_url, tmp_path)
    assert responses[0].status_code == 401
    assert responses[0].headers["x-request-id"] == "req-serve-1"
    lines = [line for line in stderr.splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert parsed, stderr
    access = [p for p in parsed if p["logger"] == "authpi.access" and p.get("request_id") == "req-serve-1"]
    assert len(access) == 1
    assert access[0]["route"] == "/v1/me"
    assert access[0]["status"] == 401
    assert "sk_wrong-secret" not in stderr
    # uvicorn's own lines are JSON too.
    assert any(p["logger"].startswith("uvicorn") for p in parsed)
    assert "Traceback" not in stderr


def test_console_format(database_url: str, tmp_path: Path):
    _stdout, stderr, _ = _run_serve(database_url, tmp_path, AUTHPI_LOG_FORMAT="console")
    access = [line for line in stderr.splitlines() if "authpi.access" in line and "/v1/me" in line]
    assert len(access) == 1
    assert "GET /v1/me 401" in access[0]
    assert "request_id=req-serve-1" in access[0]
    assert not access[0].lstrip().startswith("{")


def test_opentelemetry_spans_when_asked_for(database_url: str, tmp_path: Path):
    stdout, _stderr, responses = _run_serve(database_url, tmp_path, OTEL_TRACES_EXPORTER="console",
                                            OTEL_SERVICE_NAME="authpi-under-test")
    assert responses[0].status_code == 401
    assert '"http.route": "/v1/me"' in stdout
    assert '"service.name": "authpi-under-test"' in stdout
    # The cold verification's key lookup went through asyncpg.
    assert '"db.system": "postgresql"' in stdout


def test_no_spans_by_default(database_url: str, tmp_path: Path):
    stdout, _stderr, _ = _run_serve(database_url, tmp_path)
    assert '"trace_id"' not in stdout
