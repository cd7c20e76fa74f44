"""TOTP verifiers through the official SDK: enrollment, backup codes, verify, replay, isolation."""

from __future__ import annotations

import base64
import time
import urllib.parse

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, ValidationError
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types

ADA = {"username_type": "email", "username": "ada@globex.example", "profile": {"first_name": "Ada"}}


def code_for(secret: str, at: float | None = None) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return TOTP(key, 6, SHA1(), 30, enforce_key_length=False).generate(at or time.time()).decode()


async def enrolled(admin: AuthPIAdmin, issuer_id: str) -> tuple[str, str, str, list[str]]:
    """(user_id, verifier_id, secret, backup_codes) of a user with a completed TOTP enrollment."""
    user = await admin.issuer(issuer_id).users.create(ADA)
    verifiers = admin.issuer(issuer_id).user(user.id).verifiers
    enrollment = await verifiers.create({"type": "totp", "name": "Authenticator"})
    done = await verifiers.complete_enrollment({"enrollment_id": enrollment.enrollment_id,
                                                "code": code_for(enrollment.secret)})
    assert done.success
    return user.id, done.verifier_id, enrollment.secret, list(done.backup_codes)


class TestTotpEnrollment:
    async def test_enroll_and_complete(self, admin: AuthPIAdmin, account: AccountCredentials,
                                       issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        verifiers = admin.issuer(issuer_id).user(user.id).verifiers
        enrollment = await verifiers.create({"type": "totp", "name": "Authenticator"})
        uri = urllib.parse.urlsplit(enrollment.provisioning_uri)
        query = dict(urllib.parse.parse_qsl(uri.query))
        assert uri.scheme == "otpauth"
        assert (query["secret"], query["digits"], query["period"]) == (enrollment.secret, "6", "30")
        assert enrollment.expires_at > time.time() * 1000
        # Pending enrollments are not listed, and the key is stored encrypted only.
        assert (await verifiers.list()).data == []
        stored = await pg.fetchval("SELECT secret_encrypted FROM user_verifiers WHERE id = $1",
                                   enrollment.enrollment_id)
        assert enrollment.secret not in stored
        done = await verifiers.complete_enrollment({"enrollment_id": enrollment.enrollment_id,
                                                    "code": code_for(enrollment.secret)})
        assert done.success
        assert done.verifier_id == enrollment.enrollment_id
        assert len(done.backup_codes) == 10
        listed = [v.model_dump() for v in (await verifiers.list()).data]
        assert [(v["id"], v["type"], v["status"]) for v in listed] == [(done.verifier_id, "totp", "active")]
        assert "secret" not in str(listed)
        assert done.backup_codes[0] not in str(listed)
        got = (await verifiers.get(done.verifier_id)).model_dump()
        assert got["backup_codes_remaining"] == 10
        assert (await event_types(pg, account.account_id))[-2:] == ["user.verifier.created",
                                                                    "user.mfa.factor-created"]

    async def test_wrong_code_does_not_complete(self, admin: AuthPIAdmin, issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(ADA)
        verifiers = admin.issuer(issuer_id).user(user.id).verifiers
        enrollment = await verifiers.create({"type": "totp"})
        wrong = "000000" if code_for(enrollment.secret) != "000000" else "111111"
        result = await verifiers.complete_enrollment({"enrollment_id": enrollment.enrollment_id,
                                                      "code": wrong})
        assert (result.success, result.error) == (False, "invalid_code")
        assert (await verifiers.list()).data == []

    @pytest.mark.parametrize("body", [{}, {"enrollment_id": "vrf_x"}, {"code": "123456"},
                                      {"enrollment_id": 1, "code": "123456"}])
    async def test_complete_bad_body_is_422(self, admin: AuthPIAdmin, issuer_id: str, body: dict):
        user = await admin.issuer(issuer_id).users.create(ADA)
        with pytest.raises(ValidationError):
            await admin.issuer(issuer_id).user(user.id).verifiers.complete_enrollment(body)

    async def test_bad_create_bodies(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                     account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        path = f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/users/{user.id}/verifiers"
        before = await counts(pg, account.account_id, "user_verifiers")
        for body in ({"type": "sms"}, {"type": "totp", "password": "long enough"},
                     {"type": "totp", "name": "n" * 201}, {"type": "totp", "extra": 1}):
            resp = await client.post(path, json=body, auth=account.basic)
            assert resp.status_code == 422, resp.text
            assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "user_verifiers") == before


class TestTotpVerify:
    async def test_code_once_backup_once(self, admin: AuthPIAdmin, account: AccountCredentials,
                                         issuer_id: str, pg: asyncpg.Pool):
        user_id, verifier_id, secret, backup = await enrolled(admin, issuer_id)
        verifiers = admin.issuer(issuer_id).user(user_id).verifiers
        # The enrollment code's time step is used up: the same code is refused (no replay).
        assert not (await verifiers.verify(verifier_id, {"code": code_for(secret)})).success
        nxt = code_for(secret, time.time() + 30)
        assert (await verifiers.verify(verifier_id, {"code": nxt})).success
        assert not (await verifiers.verify(verifier_id, {"code": nxt})).success
        ok = await verifiers.verify(verifier_id, {"code": backup[0]})
        assert (ok.success, ok.remaining) == (True, 9)
        assert not (await verifiers.verify(verifier_id, {"code": backup[0]})).success
        types = await event_types(pg, account.account_id)
        assert types.count("user.mfa.verification.succeeded") == 2
        assert types.count("user.mfa.verification.failed") == 3

    async def test_regenerate_replaces_codes(self, admin: AuthPIAdmin, issuer_id: str):
        user_id, verifier_id, _, backup = await enrolled(admin, issuer_id)
        verifiers = admin.issuer(issuer_id).user(user_id).verifiers
        fresh = await verifiers.regenerate(verifier_id)
        assert len(fresh.codes) == 10
        assert not set(fresh.codes) & set(backup)
        assert not (await verifiers.verify(verifier_id, {"code": backup[1]})).success
        assert (await verifiers.verify(verifier_id, {"code": fresh.codes[0]})).success

    async def test_disable_update_delete(self, admin: AuthPIAdmin, account: AccountCredentials,
                                         issuer_id: str, pg: asyncpg.Pool):
        user_id, verifier_id, secret, backup = await enrolled(admin, issuer_id)
        verifiers = admin.issuer(issuer_id).user(user_id).verifiers
        updated = (await verifiers.update(verifier_id, {"name": "Phone", "status": "disabled"})).model_dump()
        assert (updated["name"], updated["status"]) == ("Phone", "disabled")
        result = await verifiers.verify(verifier_id, {"code": backup[0]})
        assert (result.success, result.error) == (False, "verifier_disabled")
        with pytest.raises(ValidationError):
            await verifiers.update(verifier_id, {"status": "pending"})
        await verifiers.delete(verifier_id)
        assert await pg.fetchval("SELECT count(*) FROM user_verifiers WHERE id = $1", verifier_id) == 0
        assert "user.mfa.factor-deleted" in await event_types(pg, account.account_id)
        with pytest.raises(NotFoundError):
            await verifiers.get(verifier_id)

    async def test_user_delete_removes_verifiers(self, admin: AuthPIAdmin, issuer_id: str,
                                                 pg: asyncpg.Pool):
        user_id, verifier_id, _, _ = await enrolled(admin, issuer_id)
        await admin.issuer(issuer_id).users.delete(user_id)
        assert await pg.fetchval("SELECT count(*) FROM user_verifiers WHERE user_id = $1", user_id) == 0


class TestTotpIsolation:
    async def test_other_account_and_other_user_get_404(
            self, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            other_account: AccountCredentials, issuer_id: str):
        user_id, verifier_id, _, backup = await enrolled(admin, issuer_id)
        for acc in (account.account_id, other_account.account_id):
            base = f"/v1/accounts/{acc}/issuers/{issuer_id}/users/{user_id}/verifiers"
            for method, path, body in [
                ("GET", f"{base}/{verifier_id}", None), ("PATCH", f"{base}/{verifier_id}", {"name": "x"}),
                ("DELETE", f"{base}/{verifier_id}", None), ("POST", f"{base}/{verifier_id}/regenerate", None),
                ("POST", f"{base}/{verifier_id}/verify", {"code": backup[0]}),
                ("POST", base, {"type": "totp"}),
                ("POST", f"{base}/complete-enrollment", {"enrollment_id": verifier_id, "code": "123456"}),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        # Another user of the same issuer cannot address this user's verifier.
        other = await admin.issuer(issuer_id).users.create({**ADA, "username": "bob@globex.example"})
        with pytest.raises(NotFoundError):
            await admin.issuer(issuer_id).user(other.id).verifiers.get(verifier_id)
        with pytest.raises(NotFoundError):
            await admin.issuer(issuer_id).user(other.id).verifiers.verify(verifier_id, {"code": backup[0]})
        result = await admin.issuer(issuer_id).user(user_id).verifiers.verify(verifier_id,
                                                                              {"code": backup[0]})
        assert result.success
