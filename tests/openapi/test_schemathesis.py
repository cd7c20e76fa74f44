"""Schemathesis against a live server: the OpenAPI document must describe every answer.

Every /v1 operation and the OIDC endpoints, all of schemathesis' checks (less the known ones below),
deterministic generation, a bounded number of examples per operation (about 3 minutes on 2 cores).
The fuzzer authenticates with a fresh account's key. Real objects of that account are pinned as the
`account_id`, `issuer_id`, `org_id`, `user_id`, `client_id` and `key_id` path parameters, so the
generated requests reach them instead of answering 404 everywhere; `key_id` is a second key, so the
fuzzer blocks, rotates and revokes that one, never its own credential.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import make_settings, new_account
from tests.fixtures.server import LiveServer, free_port

pytestmark = pytest.mark.timeout(900)

SEED = 20261203
MAX_EXAMPLES = int(os.environ.get("AUTHPI_SCHEMATHESIS_MAX_EXAMPLES", "5"))

# Checks that cannot pass (yet), each with its reason. Remove an entry once its cause is fixed.
KNOWN_FAILING_CHECKS: dict[str, str] = {
    # ST202 "Schema-valid request rejected": the request schemas cannot say everything the server
    # checks (opaque cursors, the scope grammar, times in the future, absolute URLs, `settings.access`
    # required, known event types), so some schema-valid requests are rightly refused with 422.
    "positive_data_acceptance": "request rules beyond JSON Schema (cursors, scopes, future times)",
}
# Inputs the server cannot take yet, left out of generation; remove each once its cause is fixed.
KNOWN_UNSUPPORTED_INPUTS: dict[str, list[str]] = {
    # Top-ups and payment methods answer 501 by design (issue: billing is not part of a self-hosted
    # server), which schemathesis counts as a server error; tests/usage checks those answers.
    "billing refusals (501 by design)": ["--exclude-path-regex", r"/(credits/topups|payment-methods)"],
}
# The operations those exclusions leave out: top-ups, and the four payment-method operations.
EXCLUDED_OPERATIONS = 5
# Never: a server error (ST101), an undocumented status (ST103), a response breaking its documented
# content type, headers or schema (ST104, ST105, ST107, ST108, ST109).
REQUIRED_CLEAN = ("ST101", "ST103", "ST104", "ST105", "ST107", "ST108", "ST109")


@pytest.fixture
def fuzz_server(database_url: str):
    """A server of its own: the failed-credential throttle off (schemathesis sends bad credentials
    on purpose, and every later request from 127.0.0.1 would otherwise be slowed down)."""
    port = free_port()
    application = create_app(make_settings(public_url=f"http://127.0.0.1:{port}", port=port,
                                           auth_fail_limit=1_000_000, auth_fail_address_limit=1_000_000,
                                           auth_throttle_delay_seconds=0),
                             database_url=database_url)
    application.openapi()  # built once, before the fuzzer asks (it is slow on a loaded machine)
    server = LiveServer(application, port).start()
    yield server
    server.stop()


async def pinned_objects(url: str, basic: tuple[str, str], account_id: str) -> dict[str, str]:
    """Real objects for the fuzzer to work on, created through the official SDK."""
    async with AuthPIAdmin(api_key=basic, base_url=url) as admin:
        issuer = await admin.issuers.create({"name": "fuzzed"})
        scoped = admin.issuer(issuer.id)
        client = await scoped.clients.create({
            "name": "fuzzed-web", "type": "external", "confidential": True,
            "settings": {"protocol": "oidc", "scopes": ["openid"], "openid": {
                "application_type": "web", "grant_types": ["authorization_code"],
                "redirect_uris": ["http://localhost:3000/cb"]}}})
        org = await scoped.organizations.create({"name": "Fuzzed Corp"})
        user = await scoped.users.create({"username_type": "email", "username": "fuzz@example.com"})
        key = await admin.api_keys.create({"name": "fuzzed", "restrictions": {"scopes": ["*:**"]}})
    return {"account_id": account_id, "issuer_id": issuer.id, "client_id": client.id,
            "org_id": org.id, "user_id": user.id, "key_id": key.id}


def summary(report: dict[str, Any]) -> str:
    ops = report["operations"]
    cases = report["test_cases"]
    lines = [f"operations {ops['tested']}/{ops['total']}, cases {cases['generated']}, "
             f"failures {cases['unique_failures']}, errors {len(report['errors'])}"]
    lines += [f"  {f['code']} {f['title']}: {f['count']}" for f in report["failures"]]
    return "\n".join(lines)


async def test_openapi_document_describes_every_answer(app: FastAPI, fuzz_server: LiveServer,
                                                       tmp_path: Path) -> None:
    creds = await new_account(app, "schemathesis")
    pinned = await pinned_objects(fuzz_server.url, creds.basic, creds.account_id)
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"path.{k}" = "{v}"\n' for k, v in pinned.items()))
    reports = Path(os.environ.get("AUTHPI_SCHEMATHESIS_REPORT_DIR") or tmp_path)
    report_path = reports / "schemathesis.json"
    exe = str(Path(sys.executable).with_name("st"))
    cmd = [exe, "--config-file", str(config), "run", f"{fuzz_server.url}/openapi.json",
           "--checks", "all", "--generation-deterministic",
           "--max-examples", str(MAX_EXAMPLES), "--workers", "2", "--no-shrink",
           "--no-color", "--output-truncate", "true",
           "--auth", f"{creds.key_id}:{creds.secret}", "--request-timeout", "30",
           "--report", "json", "--report-json-path", str(report_path)]
    for check in KNOWN_FAILING_CHECKS:
        cmd += ["--exclude-checks", check]
    for flags in KNOWN_UNSUPPORTED_INPUTS.values():
        cmd += flags
    # In tmp_path: schemathesis keeps a cache (.schemathesis/) in its working directory.
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    (reports / "schemathesis.txt").write_text(text)
    report = json.loads(report_path.read_text())
    print(summary(report))
    tail = "\n".join(text.splitlines()[-80:])
    # Every operation of the document was tested: the /v1 API, health and each issuer's OIDC endpoints.
    assert report["operations"]["tested"] == report["operations"]["total"] - EXCLUDED_OPERATIONS >= 130
    assert not report["errors"], tail
    found = {f["code"]: f for f in report["failures"]}
    assert not any(code in found for code in REQUIRED_CLEAN), f"{summary(report)}\n{text[-20000:]}"
    assert proc.returncode == 0, f"{summary(report)}\n{tail}"
