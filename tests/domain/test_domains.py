"""Account domains through the official SDK and raw HTTP: add, list, assign/unassign, DNS TXT
verification (fake resolver), delete, events, isolation."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import Account, AccountDomain
from fastapi import FastAPI

from app.organization.dns import DnsError
from tests.conftest import AccountCredentials, count_rows
from tests.fixtures.tenancy import event_types, last_event


@pytest.fixture
def txt_records(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A fake TXT resolver on the app: tests publish records into the returned dict."""
    records: dict[str, list[str]] = {}

    async def resolver(name: str) -> list[str]:
        if name in records.get("__fail__", []):
            raise DnsError("no answer from the nameserver")
        return records.get(name, [])

    monkeypatch.setattr(app.state, "txt_resolver", resolver, raising=False)
    return records


def domains_path(account_id: str) -> str:
    return f"/v1/accounts/{account_id}/domains"


def domain(acc: Account, host: str) -> dict:
    return next(d for d in acc.model_dump()["domains"] if d["host"] == host)


async def proof_of(client: httpx.AsyncClient, account: AccountCredentials, host: str) -> dict:
    """The TXT proof: raw JSON only, since the SDK's AccountDomain drops keys it does not know."""
    resp = await client.get(domains_path(account.account_id), auth=account.basic)
    return next(d for d in resp.json()["data"] if d["host"] == host)["verification"]


class TestAddDomain:
    async def test_add_returns_account(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                       account: AccountCredentials, pg: asyncpg.Pool):
        acc = await admin.domains.create({"host": "Login.Acme.Example."})
        assert isinstance(acc, Account)
        assert acc.id == account.account_id
        (entry,) = acc.domains
        assert isinstance(entry, AccountDomain)
        assert (entry.host, entry.verified, entry.primary) == ("login.acme.example", False, True)
        assert entry.added_at is not None
        proof = await proof_of(client, account, "login.acme.example")
        assert proof["type"] == "dns_txt"
        assert proof["txt_record_name"] == "_authpi-verification.login.acme.example"
        assert proof["txt_record_value"].startswith("authpi-verification=")
        stored = await pg.fetchval("SELECT domains FROM accounts WHERE id = $1", account.account_id)
        assert json.loads(stored)[0]["host"] == "login.acme.example"
        event = await last_event(pg, account.account_id, "account.domain.added")
        assert json.loads(event["data"]) == {"host": "login.acme.example"}
        second = await admin.domains.create({"host": "auth.acme.example"})
        assert domain(second, "auth.acme.example")["primary"] is False

    async def test_duplicate_is_409(self, admin: AuthPIAdmin):
        await admin.domains.create({"host": "login.acme.example"})
        with pytest.raises(ConflictError):
            await admin.domains.create({"host": "LOGIN.acme.example"})

    @pytest.mark.parametrize("body", [{}, {"host": ""}, {"host": "localhost"}, {"host": "10.0.0.1"},
                                      {"host": "a b.example"}, {"host": "-x.example"}, {"host": 5},
                                      {"host": "x" * 250 + ".com"}, {"host": "ok.example", "x": 1},
                                      {"host": "https://ok.example/"}])
    async def test_bad_host_is_422_and_writes_nothing(self, client: httpx.AsyncClient,
                                                      account: AccountCredentials, pg: asyncpg.Pool,
                                                      body: dict):
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.post(domains_path(account.account_id), json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await count_rows(pg, "events", account.account_id) == before
        assert await pg.fetchval("SELECT domains::text FROM accounts WHERE id = $1",
                                 account.account_id) == "[]"


class TestListDomains:
    async def test_lists_in_one_page(self, admin: AuthPIAdmin):
        assert (await admin.domains.list()).data == []
        await admin.domains.create({"host": "a.acme.example"})
        await admin.domains.create({"host": "b.acme.example"})
        page = await admin.domains.list()
        assert [d.host for d in page.data] == ["a.acme.example", "b.acme.example"]
        assert page.has_more is False


class TestAssignDomain:
    async def test_assign_and_unassign(self, admin: AuthPIAdmin, account: AccountCredentials,
                                       issuer_id: str, pg: asyncpg.Pool):
        acc = await admin.domains.create({"host": "login.acme.example"})
        assigned = await admin.domains.assign("login.acme.example", {"issuer_id": issuer_id},
                                              if_match=acc._etag)
        entry = domain(assigned, "login.acme.example")
        assert entry["assigned_issuer_id"] == issuer_id
        assert entry["assigned_at"] is not None
        event = await last_event(pg, account.account_id, "account.domain.assigned")
        assert event["issuer_id"] == issuer_id
        unassigned = await admin.domains.unassign("login.acme.example")
        assert domain(unassigned, "login.acme.example")["assigned_issuer_id"] is None
        assert (await event_types(pg, account.account_id))[-3:] == [
            "account.domain.added", "account.domain.assigned", "account.domain.unassigned"]

    async def test_issuer_must_be_in_the_account(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                 other_issuer_id: str, pg: asyncpg.Pool):
        await admin.domains.create({"host": "login.acme.example"})
        before = await count_rows(pg, "events", account.account_id)
        for body in ({"issuer_id": other_issuer_id}, {}, None):
            with pytest.raises(ValidationError):
                await admin.domains.assign("login.acme.example", body)
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_stale_if_match_is_412(self, admin: AuthPIAdmin, issuer_id: str):
        acc = await admin.domains.create({"host": "login.acme.example"})
        await admin.domains.create({"host": "auth.acme.example"})
        with pytest.raises(PreconditionFailedError):
            await admin.domains.assign("login.acme.example", {"issuer_id": issuer_id}, if_match=acc._etag)

    async def test_unknown_domain_is_404(self, admin: AuthPIAdmin, issuer_id: str):
        with pytest.raises(NotFoundError):
            await admin.domains.assign("nope.acme.example", {"issuer_id": issuer_id})
        with pytest.raises(NotFoundError):
            await admin.domains.unassign("nope.acme.example")


class TestVerifyDomain:
    async def test_verify_with_txt_record(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                          account: AccountCredentials, pg: asyncpg.Pool, txt_records: dict):
        host = f"login-{uuid.uuid4().hex[:12]}.acme.example"
        await admin.domains.create({"host": host})
        proof = await proof_of(client, account, host)
        before = await count_rows(pg, "events", account.account_id)
        not_yet = await admin.domains.verify(host)
        assert domain(not_yet, host)["verified"] is False
        txt_records["__fail__"] = [proof["txt_record_name"]]
        failed = await admin.domains.verify(host)
        assert domain(failed, host)["verified"] is False
        assert await count_rows(pg, "events", account.account_id) == before
        txt_records["__fail__"] = []
        txt_records[proof["txt_record_name"]] = ["v=spf1 -all", proof["txt_record_value"]]
        done = await admin.domains.verify(host)
        entry = domain(done, host)
        assert entry["verified"] is True
        stored = json.loads(await pg.fetchval("SELECT domains FROM accounts WHERE id = $1",
                                              account.account_id))
        assert stored[0]["verified_at"] is not None
        assert (await event_types(pg, account.account_id))[-1] == "account.domain.verified"

    async def test_host_verified_by_one_account_only(self, admin: AuthPIAdmin, other_admin: AuthPIAdmin,
                                                     client: httpx.AsyncClient, account: AccountCredentials,
                                                     other_account: AccountCredentials, txt_records: dict):
        host = f"login-{uuid.uuid4().hex[:12]}.acme.example"
        await admin.domains.create({"host": host})
        await other_admin.domains.create({"host": host})
        for acc in (account, other_account):
            proof = await proof_of(client, acc, host)
            txt_records.setdefault(proof["txt_record_name"], []).append(proof["txt_record_value"])
        await admin.domains.verify(host)
        with pytest.raises(ConflictError):
            await other_admin.domains.verify(host)
        await other_admin.domains.delete(host)
        with pytest.raises(ConflictError):
            await other_admin.domains.create({"host": host})


class TestDeleteDomain:
    async def test_delete_moves_primary(self, admin: AuthPIAdmin, account: AccountCredentials,
                                        pg: asyncpg.Pool):
        await admin.domains.create({"host": "a.acme.example"})
        acc = await admin.domains.create({"host": "b.acme.example"})
        await admin.domains.delete("a.acme.example", if_match=acc._etag)
        (left,) = (await admin.domains.list()).data
        assert (left.host, left.primary) == ("b.acme.example", True)
        with pytest.raises(NotFoundError):
            await admin.domains.delete("a.acme.example")
        event = await last_event(pg, account.account_id, "account.domain.removed")
        assert json.loads(event["data"]) == {"host": "a.acme.example"}

    async def test_stale_if_match_is_412(self, admin: AuthPIAdmin):
        acc = await admin.domains.create({"host": "a.acme.example"})
        await admin.domains.create({"host": "b.acme.example"})
        with pytest.raises(PreconditionFailedError):
            await admin.domains.delete("a.acme.example", if_match=acc._etag)


class TestDomainIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                         account: AccountCredentials,
                                                         other_account: AccountCredentials, issuer_id: str):
        await admin.domains.create({"host": "login.acme.example"})
        base = domains_path(account.account_id)
        for method, path, body in [
            ("GET", base, None), ("POST", base, {"host": "x.acme.example"}),
            ("DELETE", f"{base}/login.acme.example", None),
            ("POST", f"{base}/login.acme.example/assign", {"issuer_id": issuer_id}),
            ("POST", f"{base}/login.acme.example/unassign", None),
            ("POST", f"{base}/login.acme.example/verify", None),
        ]:
            resp = await client.request(method, path, json=body, auth=other_account.basic)
            assert resp.status_code == 404, (method, path, resp.text)
        assert [d.host for d in (await admin.domains.list()).data] == ["login.acme.example"]
        # The other account cannot assign its domain to this account's issuer either.
        own = domains_path(other_account.account_id)
        await client.post(own, json={"host": "other.example"}, auth=other_account.basic)
        resp = await client.post(f"{own}/other.example/assign", json={"issuer_id": issuer_id},
                                 auth=other_account.basic)
        assert resp.status_code == 422


class TestDomainScopes:
    async def test_read_scope_cannot_write(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                           account: AccountCredentials):
        key = await admin.api_keys.create({"name": "ro", "restrictions": {"scopes": ["domains:read"]}})
        basic = (key.id, key.secret_plain)
        base = domains_path(account.account_id)
        assert (await client.get(base, auth=basic)).status_code == 200
        assert (await client.post(base, json={"host": "x.acme.example"}, auth=basic)).status_code == 403
