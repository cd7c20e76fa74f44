"""Approvals (users awaiting admission) and trusted devices, through the official SDK."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, ValidationError
from authpi_admin.generated.models import IssuerApprovalsListItem, TrustedDevice, User
from fastapi import FastAPI

from app.core.ids import now_ms
from app.user.service import authenticate_password
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types, last_event

ADA = {"username_type": "email", "username": "ada@globex.example", "profile": {"first_name": "Ada"}}
DEVICE = {"fingerprint": "f" * 64, "name": "Ada's laptop", "user_agent": "Mozilla/5.0"}


class TestApprovals:
    async def test_pending_user_listed_then_approved(self, app: FastAPI, admin: AuthPIAdmin,
                                                     account: AccountCredentials, issuer_id: str,
                                                     pg: asyncpg.Pool):
        scope = admin.issuer(issuer_id)
        await scope.users.create({**ADA, "username": "plain@globex.example"})
        user = await scope.users.create({**ADA, "status": "pending_approval",
                                         "password": "correct horse battery"})
        assert user.status == "pending_approval"
        assert user.approval["status"] == "pending"
        page = await scope.approvals.list()
        assert all(isinstance(a, IssuerApprovalsListItem) for a in page.data)
        assert [a.user_id for a in page.data] == [user.id]

        async def login() -> object:
            async with app.state.db.unit_of_work() as session:
                return await authenticate_password(session, account_id=account.account_id,
                                                   issuer_id=issuer_id, username=ADA["username"],
                                                   password="correct horse battery")

        assert await login() is None  # not admitted yet
        got = await scope.approvals.get(user.id)
        assert isinstance(got, User)
        approved = await scope.approvals.update(user.id, {"status": "approved"}, if_match=got._etag)
        assert (approved.status, approved.approval["status"]) == ("active", "approved")
        assert approved.approval["decided_by"] == account.key_id
        assert (await login()).id == user.id
        assert (await scope.approvals.list()).data == []
        assert (await event_types(pg, account.account_id))[-3:] == [
            "user.created", "user.approval.requested", "user.approval.approved"]
        with pytest.raises(ConflictError):
            await scope.approvals.update(user.id, {"status": "rejected"})

    async def test_reject(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                          pg: asyncpg.Pool):
        scope = admin.issuer(issuer_id)
        user = await scope.users.create({**ADA, "status": "pending_approval"})
        rejected = await scope.approvals.update(user.id, {"status": "rejected", "reason": "spam"})
        assert (rejected.status, rejected.status_reason) == ("rejected", "spam")
        event = await last_event(pg, account.account_id, "user.approval.rejected")
        assert json.loads(event["data"]) == {"reason": "spam"}
        # A rejected user cannot be re-activated around the approval flow.
        with pytest.raises(ConflictError):
            await scope.users.update(user.id, {"status": "active"})

    async def test_plain_user_has_no_approval_and_bad_bodies(self, admin: AuthPIAdmin, issuer_id: str):
        scope = admin.issuer(issuer_id)
        plain = await scope.users.create(ADA)
        with pytest.raises(NotFoundError):
            await scope.approvals.get(plain.id)
        pending = await scope.users.create({**ADA, "username": "p@globex.example",
                                            "status": "pending_approval"})
        for body in ({}, {"status": "maybe"}, {"status": "approved", "extra": 1}):
            with pytest.raises(ValidationError):
                await scope.approvals.update(pending.id, body)
        assert (await scope.approvals.get(pending.id)).status == "pending_approval"
        with pytest.raises(ValidationError):
            await scope.users.create({**ADA, "username": "q@globex.example", "status": "blocked"})

    async def test_isolation(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                             account: AccountCredentials, other_account: AccountCredentials,
                             issuer_id: str, second_issuer_id: str):
        user = await admin.issuer(issuer_id).users.create({**ADA, "status": "pending_approval"})
        for acc in (account.account_id, other_account.account_id):
            base = f"/v1/accounts/{acc}/issuers/{issuer_id}/approvals"
            for method, path, body in [("GET", base, None), ("GET", f"{base}/{user.id}", None),
                                       ("PATCH", f"{base}/{user.id}", {"status": "approved"})]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        with pytest.raises(NotFoundError):
            await admin.issuer(second_issuer_id).approvals.get(user.id)
        assert (await admin.issuer(second_issuer_id).approvals.list()).data == []


class TestTrustedDevices:
    async def test_trust_list_renew_delete(self, admin: AuthPIAdmin, account: AccountCredentials,
                                           issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        td = admin.issuer(issuer_id).user(user.id).trusted_devices
        created = await td.create(DEVICE)
        assert created.device_id.startswith("dev_")
        assert created.expires_at > now_ms()
        page = await td.list()
        assert not page.has_more
        assert all(isinstance(d, TrustedDevice) for d in page.data)
        assert [(d.id, d.fingerprint, d.name) for d in page.data] == [
            (created.device_id, DEVICE["fingerprint"], "Ada's laptop")]
        # The same fingerprint renews the same device.
        again = await td.create({**DEVICE, "name": "renamed"})
        assert again.device_id == created.device_id
        assert [d.name for d in (await td.list()).data] == ["renamed"]
        await td.delete(created.device_id)
        assert (await td.list()).data == []
        with pytest.raises(NotFoundError):
            await td.delete(created.device_id)
        assert (await event_types(pg, account.account_id))[-3:] == [
            "user.device.trusted", "user.device.trusted", "user.device.revoked"]

    async def test_revoke_all(self, admin: AuthPIAdmin, issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        td = admin.issuer(issuer_id).user(user.id).trusted_devices
        for i in range(3):
            await td.create({**DEVICE, "fingerprint": f"fp-{i}"})
        assert (await td.revoke_all()).revoked_count == 3
        assert (await td.list()).data == []
        assert (await td.revoke_all()).revoked_count == 0

    @pytest.mark.parametrize("body", [{}, {"fingerprint": ""}, {"fingerprint": "x" * 257},
                                      {"fingerprint": "x", "expires_at": 1},
                                      # schemathesis: `false` was read as 0, "the default expiry"
                                      {"fingerprint": "x", "expires_at": False},
                                      {"fingerprint": "x", "user_agent": "u" * 513},
                                      {"fingerprint": "x", "trusted": True}])
    async def test_bad_input_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                            account: AccountCredentials, issuer_id: str,
                                            pg: asyncpg.Pool, body: dict):
        user = await admin.issuer(issuer_id).users.create(ADA)
        before = await counts(pg, account.account_id, "user_trusted_devices")
        resp = await client.post(
            f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/users/{user.id}/trusted-devices",
            json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "user_trusted_devices") == before

    async def test_isolation(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                             account: AccountCredentials, other_account: AccountCredentials,
                             issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        device = await admin.issuer(issuer_id).user(user.id).trusted_devices.create(DEVICE)
        for acc in (account.account_id, other_account.account_id):
            base = f"/v1/accounts/{acc}/issuers/{issuer_id}/users/{user.id}/trusted-devices"
            for method, path, body in [("GET", base, None), ("POST", base, DEVICE),
                                       ("POST", f"{base}/revoke-all", None),
                                       ("DELETE", f"{base}/{device.device_id}", None)]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        other = await admin.issuer(issuer_id).users.create({**ADA, "username": "bob@globex.example"})
        with pytest.raises(NotFoundError):
            await admin.issuer(issuer_id).user(other.id).trusted_devices.delete(device.device_id)
        assert await pg.fetchval("SELECT count(*) FROM user_trusted_devices WHERE user_id = $1",
                                 user.id) == 1
