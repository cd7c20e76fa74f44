"""Schemathesis against a live server: the OpenAPI document must describe every answer.

Every /v1 operation and the OIDC endpoints, all of schemathesis' checks, a fixed seed
(deterministic generation), a bounded number of examples per operation (about 3 minutes on 2 cores).
The fuzzer authenticates with a fresh account's key; its account and one issuer of it are pinned as
the `account_id` and `issuer_id` path parameters, so the generated requests reach real objects
instead of answering 404 everywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import make_settings, new_account
from tests.fixtures.server import LiveServer, free_port
from tests.fixtures.tenancy import create_issuer

pytestmark = pytest.mark.timeout(600)

SEED = 20261203
MAX_EXAMPLES = int(os.environ.get("AUTHPI_SCHEMATHESIS_MAX_EXAMPLES", "5"))

# Checks that cannot pass yet, each with its reason. Remove an entry once its cause is fixed.
KNOWN_FAILING_CHECKS: dict[str, str] = {}


@pytest.fixture
def fuzz_server(database_url: str):
    """A server of its own: the failed-credential throttle off (schemathesis sends bad credentials
    on purpose, and every later request from 127.0.0.1 would otherwise be slowed down)."""
    port = free_port()
    application = create_app(make_settings(public_url=f"http://127.0.0.1:{port}", port=port,
                                           auth_fail_limit=1_000_000, auth_throttle_delay_seconds=0),
                             database_url=database_url)
    server = LiveServer(application, port).start()
    yield server
    server.stop()


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Operations, cases and failures by check from schemathesis' JSON report."""
    return report


async def test_openapi_document_describes_every_answer(app: FastAPI, fuzz_server: LiveServer,
                                                       tmp_path: Path) -> None:
    creds = await new_account(app, "schemathesis")
    issuer_id = await create_issuer(app, creds.account_id, "fuzzed")
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.account_id" = "{creds.account_id}"\n'
        f'"path.issuer_id" = "{issuer_id}"\n'
    )
    ndjson = tmp_path / "events.ndjson"
    exe = str(Path(sys.executable).with_name("st"))
    cmd = [exe, "--config-file", str(config), "run", f"{fuzz_server.url}/openapi.json",
           "--checks", "all", "--seed", str(SEED), "--generation-deterministic",
           "--max-examples", str(MAX_EXAMPLES), "--workers", "2", "--no-shrink",
           "--no-color", "--output-truncate", "true",
           "--auth", f"{creds.key_id}:{creds.secret}", "--request-timeout", "10",
           "--report", "ndjson", "--report-ndjson-path", str(ndjson)]
    for check in KNOWN_FAILING_CHECKS:
        cmd += ["--exclude-checks", check]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    tail = "\n".join(text.splitlines()[-60:])
    print(text)
    assert proc.returncode == 0, f"schemathesis found problems:\n{tail}"
