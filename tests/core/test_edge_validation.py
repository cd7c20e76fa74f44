"""Validation at the edge (issue 9, item 3): every crafted input of the report gets a 4xx in the
contract's error shape, never a 500, changes nothing, and leaves a keep-alive connection usable."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.generated.models import ApiError as ApiErrorBody
from fastapi import FastAPI

from app.core.edge import MAX_JSON_DEPTH, check_json_body, json_depth_exceeds
from tests.conftest import AccountCredentials, count_rows
from tests.fixtures.server import LiveServer

BIG = "99999999999999999999"  # beyond int64


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw(template: str) -> dict[str, Any]:
    return {"content": template.encode(), "headers": {"content-type": "application/json"}}


USER = '{"username_type": "username", "username": "ada", %s}'
ISSUER = '{"name": "acme", %s}'

# (name, method, path, request kwargs); {A} account, {I} issuer, {U} user.
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("nul-issuer-name", "POST", "/v1/accounts/{A}/issuers", {"json": {"name": "acme\x00"}}),
    ("nul-org-name", "POST", "/v1/accounts/{A}/issuers/{I}/organizations", {"json": {"name": "Globex\x00"}}),
    ("nul-user-profile", "POST", "/v1/accounts/{A}/issuers/{I}/users",
     raw(USER % '"profile": {"first_name": "A\\u0000"}')),
    ("nul-user-username", "POST", "/v1/accounts/{A}/issuers/{I}/users",
     {"json": {"username_type": "username", "username": "ada\x00"}}),
    ("nul-key-name", "POST", "/v1/accounts/{A}/api-keys",
     {"json": {"type": "api_key", "name": "k\x00", "restrictions": {"scopes": ["users:read"]}}}),
    ("nul-path-issuer", "GET", "/v1/accounts/{A}/issuers/i_%00x", {}),
    ("nul-path-account", "GET", "/v1/accounts/acc_%00/issuers", {}),
    ("nul-path-user", "PATCH", "/v1/accounts/{A}/issuers/{I}/users/usr_%00", {"json": {"metadata": {}}}),
    ("nul-filter-q", "GET", "/v1/accounts/{A}/issuers?q=%00", {}),
    ("nul-filter-status", "GET", "/v1/accounts/{A}/issuers/{I}/users?status=%00", {}),
    ("nul-filter-event-types", "GET", "/v1/accounts/{A}/events?event_types=user.created%00", {}),
    ("nul-cursor", "GET", "/v1/accounts/{A}/issuers?cursor=%00abc", {}),
    ("nul-metadata-value", "POST", "/v1/accounts/{A}/issuers", raw(ISSUER % '"metadata": {"k": "\\u0000"}')),
    ("nul-metadata-key", "POST", "/v1/accounts/{A}/issuers", raw(ISSUER % '"metadata": {"\\u0000": 1}')),
    ("surrogate-metadata", "POST", "/v1/accounts/{A}/issuers", raw(ISSUER % '"metadata": {"k": "\\ud800"}')),
    ("surrogate-custom-fields", "POST", "/v1/accounts/{A}/issuers/{I}/users",
     raw(USER % '"custom_fields": {"k": "x\\udfffy"}')),
    ("nan-metadata", "POST", "/v1/accounts/{A}/issuers", raw(ISSUER % '"metadata": {"k": NaN}')),
    ("infinity-metadata", "POST", "/v1/accounts/{A}/issuers", raw(ISSUER % '"metadata": {"k": Infinity}')),
    ("minus-infinity-custom-fields", "POST", "/v1/accounts/{A}/issuers/{I}/users",
     raw(USER % '"custom_fields": {"k": -Infinity}')),
    ("1e400-metadata", "POST", "/v1/accounts/{A}/issuers", raw(ISSUER % '"metadata": {"k": 1e400}')),
    ("1e400-custom-fields", "POST", "/v1/accounts/{A}/issuers/{I}/users",
     raw(USER % '"custom_fields": {"k": [1, 1e400]}')),
    ("events-before-int64", "GET", "/v1/accounts/{A}/events?before=" + BIG, {}),
    ("events-after-int64", "GET", "/v1/accounts/{A}/events?after=" + BIG, {}),
    ("aggregate-before-int64", "GET", "/v1/accounts/{A}/events/aggregate?before=" + BIG, {}),
    ("aggregate-after-int64", "GET", "/v1/accounts/{A}/events/aggregate?after=1e400", {}),
    ("metadata-480-deep", "POST", "/v1/accounts/{A}/issuers",
     raw(ISSUER % f'"metadata": {{"k": {nested(480)}}}')),
    ("metadata-900-deep", "POST", "/v1/accounts/{A}/issuers",
     raw(ISSUER % f'"metadata": {{"k": {nested(900)}}}')),
    ("duplicate-restrictions", "POST", "/v1/accounts/{A}/api-keys",
     raw('{"type": "api_key", "name": "dup", "restrictions": {"scopes": ["users:read"]}, '
         '"restrictions": {"scopes": ["*:**"]}}')),
    ("int-beyond-int64", "POST", "/v1/accounts/{A}/issuers/{I}/users",
     raw(USER % f'"custom_fields": {{"n": {BIG}}}')),
    ("nul-token-form", "POST", "/{I}/token",
     {"data": {"grant_type": "client_credentials", "client_id": "c_\x00", "client_secret": "x"}}),
    ("nul-login-form", "POST", "/{I}/login", {"data": {"username": "ada\x00", "password": "x"}}),
]


@dataclass
class Tenant:
    creds: AccountCredentials
    issuer_id: str
    user_id: str

    def path(self, template: str) -> str:
        return (template.replace("{A}", self.creds.account_id).replace("{I}", self.issuer_id)
                .replace("{U}", self.user_id))


@pytest.fixture
async def tenant(admin: AuthPIAdmin, account: AccountCredentials) -> Tenant:
    issuer = await admin.issuers.create({"name": "edge"})
    user = await admin.issuer(issuer.id).users.create({"username_type": "username", "username": "grace"})
    return Tenant(account, issuer.id, user.id)


async def fingerprint(pg: asyncpg.Pool, account_id: str) -> tuple[int, ...]:
    return tuple([await count_rows(pg, t, account_id)
                  for t in ("events", "issuers", "users", "api_keys", "organizations")])


class TestCraftedInputs:
    @pytest.mark.parametrize(("name", "method", "path", "kwargs"), CASES, ids=[c[0] for c in CASES])
    async def test_refused_with_4xx_and_nothing_changes(
            self, app: FastAPI, tenant: Tenant, pg: asyncpg.Pool, name: str, method: str, path: str,
            kwargs: dict[str, Any]) -> None:
        before = await fingerprint(pg, tenant.creds.account_id)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            r = await http.request(method, tenant.path(path), auth=tenant.creds.basic, **kwargs)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        body = r.json()
        if path.startswith("/v1"):
            err = ApiErrorBody.model_validate(body)
            assert err.retryable is False
        else:
            assert isinstance(body.get("error"), str) or r.status_code == 403
        assert await fingerprint(pg, tenant.creds.account_id) == before


class TestKeepAlive:
    async def test_the_connection_survives_a_refused_input(self, live_server: LiveServer,
                                                           account: AccountCredentials) -> None:
        """Over a real socket: after each refusal the same connection answers the next request
        (a 500 used to close it under the client)."""
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
        auth = httpx.BasicAuth(*account.basic)._auth_header
        for name, method, path, kwargs in CASES:
            if not path.startswith("/v1") or "{I}" in path:
                continue
            target = path.replace("{A}", account.account_id)
            body = json.dumps(kwargs["json"]).encode() if "json" in kwargs else kwargs.get("content")
            conn.request(method, target, body=body,
                         headers={"Authorization": auth, "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert 400 <= resp.status < 500, (name, resp.status)
            conn.request("GET", "/healthz")
            follow = conn.getresponse()
            follow.read()
            assert follow.status == 200, name
        conn.close()


class TestBounds:
    def test_depth_is_counted_without_recursion(self) -> None:
        assert not json_depth_exceeds(nested(MAX_JSON_DEPTH).encode())
        assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1).encode())
        assert json_depth_exceeds(nested(1_000_000).encode())
        # Brackets inside strings do not count.
        assert not json_depth_exceeds(json.dumps({"k": "[" * 500}).encode())

    @pytest.mark.parametrize("document", [
        '{"k": ' + json.dumps("x" * 70_000) + "}",
        '{"k": [' + ",".join(["1"] * 10_001) + "]}",
        "{" + ",".join(f'"k{i}": 1' for i in range(1_001)) + "}",
    ], ids=["long-string", "long-array", "many-keys"])
    def test_lengths_are_bounded(self, document: str) -> None:
        with pytest.raises(Exception, match=r"at most"):
            check_json_body(document.encode())
