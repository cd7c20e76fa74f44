"""/metrics, request ids, the access log and the events' `trace` field."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.observability.logs import JsonFormatter
from tests.conftest import AccountCredentials


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        got = ",".join(sorted(match.group(2).split(","))) if match.group(2) else ""
        if got == wanted:
            return float(match.group(3))
    return 0.0


class Capture(logging.Handler):
    """The JSON lines the server would print."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines():
    handler = Capture()
    logger = logging.getLogger("authpi")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


async def test_metrics_shows_the_request_just_made(client: httpx.AsyncClient, account: AccountCredentials):
    route = "/v1/accounts/{account_id}"
    before = (await client.get("/metrics")).text
    response = await client.get(f"/v1/accounts/{account.account_id}", auth=account.basic)
    assert response.status_code == 200
    scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    after = scraped.text
    labels = {"method": "GET", "route": route, "status": "200"}
    assert sample(after, "authpi_http_requests_total", **labels) == \
        sample(before, "authpi_http_requests_total", **labels) + 1
    assert sample(after, "authpi_http_request_duration_seconds_count", method="GET", route=route) >= 1
    # Tenants' ids never become label values.
    assert account.account_id not in after
    # The components' figures are there.
    for name, labels in [("authpi_key_cache_lookups_total", {"result": "miss"}),
                         ("authpi_db_pool_connections", {"pool": "orm", "state": "size"}),
                         ("authpi_listen_connected", {"listener": "hub"})]:
        assert sample(after, name, **labels) >= 1, name
    for name in ("authpi_argon2_pending", "authpi_event_batch_lag_seconds", "authpi_webhook_queue_depth",
                 "authpi_webhook_queue_oldest_seconds"):
        assert re.search(rf"^{name} \d", after, re.M), name


async def test_warm_verifications_are_counted(client: httpx.AsyncClient, account: AccountCredentials):
    before = (await client.get("/metrics")).text
    for _ in range(3):
        assert (await client.get("/v1/me", auth=account.basic)).status_code == 200
    after = (await client.get("/metrics")).text
    hits = sample(after, "authpi_key_cache_lookups_total", result="hit") - \
        sample(before, "authpi_key_cache_lookups_total", result="hit")
    assert hits >= 2
    assert sample(after, "authpi_http_requests_total", method="GET", route="/v1/me", status="200") >= 3


async def test_a_failed_request_logs_its_request_id_and_no_secret(
        client: httpx.AsyncClient, account: AccountCredentials, log_lines: list[str]):
    secret = "not-the-secret-" + account.secret[-12:]
    response = await client.get(f"/v1/accounts/{account.account_id}", auth=(account.key_id, secret),
                                headers={"X-Request-Id": "req-failed-401"})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "req-failed-401"
    access = [json.loads(line) for line in log_lines if '"logger":"authpi.access"' in line]
    mine = [line for line in access if line.get("request_id") == "req-failed-401"]
    assert len(mine) == 1
    assert mine[0]["status"] == 401
    assert mine[0]["method"] == "GET"
    assert mine[0]["route"] == "/v1/accounts/{account_id}"
    assert isinstance(mine[0]["duration_ms"], float)
    for line in log_lines:
        assert secret not in line
        assert account.secret not in line
        assert account.key_id + ":" not in line


async def test_request_id_is_generated_when_absent_or_unusable(client: httpx.AsyncClient):
    first = await client.get("/healthz")
    second = await client.get("/healthz", headers={"X-Request-Id": "bad id with spaces;" + "x" * 90})
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_the_access_log_names_the_principal(client: httpx.AsyncClient, account: AccountCredentials,
                                                  log_lines: list[str]):
    response = await client.get(f"/v1/accounts/{account.account_id}", auth=account.basic,
                                headers={"X-Request-Id": "req-principal"})
    assert response.status_code == 200
    line = next(json.loads(x) for x in log_lines if '"request_id":"req-principal"' in x
                and '"logger":"authpi.access"' in x)
    assert line["principal"] == account.key_id
    assert account.secret not in json.dumps(line)


async def test_events_carry_the_request_id_in_trace(app: FastAPI, account: AccountCredentials):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 headers={"X-Request-Id": "req-trace-1"}) as http:
        admin = AuthPIAdmin(api_key=account.basic, base_url="http://testserver", http_client=http)
        issuer = await admin.issuers.create({"name": "traced"})
        events = (await admin.events.list(limit=20)).data
    # A fresh account: its one issuer.created is this request's.
    created = [e for e in events if e.type == "issuer.created"]
    assert len(created) == 1, [e.type for e in events]
    assert issuer.id in json.dumps(created[0].subject)
    assert created[0].trace == "req-trace-1"
