"""Webhooks CRUD through the official SDK and raw HTTP (SDK-CONTRACT §2.11)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, ValidationError
from authpi_admin.generated.models import Webhook, WebhookListItem, WebhooksCreateResponse
from fastapi import FastAPI

from app.core import crypto
from tests.conftest import TEST_SECRET_KEY, AccountCredentials, count_rows, make_settings
from tests.webhooks.conftest import create_hook
from tests.webhooks.receiver import Receiver

URL = "https://hooks.example.com/authpi"


def body(**extra: Any) -> dict[str, Any]:
    return {"name": "crm", "url": URL, "auth": {"type": "signature"}, "events": ["user.created"], **extra}


async def trail(pg: asyncpg.Pool, account_id: str, type_: str) -> list[asyncpg.Record]:
    return await pg.fetch("SELECT * FROM events WHERE account_id = $1 AND type = $2 ORDER BY id",
                          account_id, type_)


class TestCreateWebhook:
    async def test_returns_the_secret_once_and_records_the_event(
            self, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool) -> None:
        hook = await admin.webhooks.create(body(description="to the CRM", metadata={"team": "crm"}))
        assert isinstance(hook, WebhooksCreateResponse)
        secret = hook.auth.model_extra["secret"]
        assert hook.auth.model_extra["type"] == "signature"
        assert secret.startswith("whsec_")
        assert hook.id.startswith("wh_")
        assert hook.status == "active"
        assert hook.events == ["user.created"]
        assert hook.retry["max_attempts"] >= 1
        assert hook.circuit_breaker["enabled"] is True
        row = await pg.fetchrow("SELECT * FROM webhooks WHERE id = $1", hook.id)
        # Stored encrypted (recoverable to sign), never in clear.
        assert secret not in row["secret_encrypted"]
        assert crypto.decrypt(TEST_SECRET_KEY, row["secret_encrypted"], f"webhook:{hook.id}".encode()
                              ).decode() == secret
        events = await trail(pg, account.account_id, "webhook.created")
        assert [json.loads(e["subject"]) for e in events] == [{"type": "webhook", "id": hook.id}]
        assert secret not in str(events[0]["data"])

    async def test_subjects_retry_and_breaker_are_kept(self, admin: AuthPIAdmin) -> None:
        # Subject filters name real ids of the account (unknown ones are refused).
        i_1 = (await admin.issuers.create({"name": "keep"})).id
        org_2 = (await admin.issuer(i_1).organizations.create({"name": "keep"})).id
        usr_3 = (await admin.issuer(i_1).users.create({"username_type": "username", "username": "k"})).id
        subjects = [{"issuer_id": i_1}, {"org_id": org_2, "user_id": usr_3}]
        hook = await admin.webhooks.create(body(
            subjects=subjects,
            retry={"max_attempts": 3, "initial_delay_ms": 200}, circuit_breaker={"failure_threshold": 5},
            status="paused"))
        assert hook.subjects == subjects
        assert hook.retry["max_attempts"] == 3
        assert hook.retry["initial_delay_ms"] == 200
        assert hook.circuit_breaker["failure_threshold"] == 5
        assert hook.status == "paused"

    @pytest.mark.parametrize("events", [["user.*"], ["*"], ["api-key.verified"], ["no.such"], []])
    async def test_refuses_wildcards_trail_only_and_unknown_types(
            self, client: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool,
            events: list[str]) -> None:
        resp = await client.post(f"/v1/accounts/{account.account_id}/webhooks", json=body(events=events),
                                 auth=account.basic)
        assert resp.status_code == 422
        assert resp.json()["fields"][0]["field"].startswith("events")
        assert await count_rows(pg, "webhooks", account.account_id) == 0

    @pytest.mark.parametrize("url", ["ftp://example.com/x", "javascript:alert(1)", "example.com/hook",
                                     "https://user:pw@example.com/"])
    async def test_refuses_non_http_urls(self, admin: AuthPIAdmin, url: str) -> None:
        with pytest.raises(ValidationError) as err:
            await admin.webhooks.create(body(url=url))
        assert err.value.fields
        assert err.value.fields[0]["field"] == "url"

    async def test_refuses_bad_policies_and_unknown_fields(self, admin: AuthPIAdmin) -> None:
        for bad in (body(retry={"max_attempts": 0}), body(circuit_breaker={"failure_threshold": "x"}),
                    body(subjects=[{}]), body(subjects=[{"tenant": "x"}]), body(auth={"type": "basic"}),
                    body(colour="red")):
            with pytest.raises(ValidationError):
                await admin.webhooks.create(bad)

    @pytest.mark.parametrize("url", ["http://127.0.0.1:8080/h", "http://localhost/h", "http://10.1.2.3/h",
                                     "http://169.254.169.254/latest", "http://[::1]/h", "http://192.168.1.1/h",
                                     "http://[::ffff:127.0.0.1]/h"])
    async def test_refuses_private_targets_unless_allowed(
            self, database_url: str, account: AccountCredentials, url: str) -> None:
        from app.main import create_app

        strict = create_app(make_settings(webhooks_allow_private=False, webhooks_relay_enabled=False),
                            database_url=database_url)
        async with strict.router.lifespan_context(strict):
            transport = httpx.ASGITransport(app=strict)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                resp = await c.post(f"/v1/accounts/{account.account_id}/webhooks", json=body(url=url),
                                    auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"][0]["field"] == "url"


class TestListWebhooks:
    async def test_lists_newest_first_with_status_filter(self, admin: AuthPIAdmin) -> None:
        a = await admin.webhooks.create(body(name="a"))
        b = await admin.webhooks.create(body(name="b", status="paused"))
        page = await admin.webhooks.list()
        assert [w.id for w in page.data] == [b.id, a.id]
        assert all(isinstance(w, WebhookListItem) and w.auth_type == "signature" for w in page.data)
        paused = await admin.webhooks.list(status="paused")
        assert [w.id for w in paused.data] == [b.id]
        first = await admin.webhooks.list(limit=1)
        assert first.has_more
        assert first.next_cursor
        rest = await admin.webhooks.list(limit=1, cursor=first.next_cursor)
        assert [w.id for w in rest.data] == [a.id]


class TestGetWebhook:
    async def test_never_shows_the_secret(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                          account: AccountCredentials) -> None:
        created = await admin.webhooks.create(body())
        got = await admin.webhook(created.id).get()
        assert isinstance(got, Webhook)
        assert got.auth.model_extra == {"type": "signature"}
        raw = await client.get(f"/v1/accounts/{account.account_id}/webhooks/{created.id}", auth=account.basic)
        assert created.auth.model_extra["secret"] not in raw.text
        assert raw.headers["etag"]

    async def test_unknown_id_is_404(self, admin: AuthPIAdmin) -> None:
        with pytest.raises(NotFoundError):
            await admin.webhooks.get("wh_01nonexistent0000000000000")


class TestUpdateWebhook:
    async def test_changes_fields_and_records_webhook_updated(
            self, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool) -> None:
        hook = await admin.webhooks.create(body())
        updated = await admin.webhooks.update(hook.id, {"name": "renamed", "events": ["user.created",
                                                        "user.deleted"], "retry": {"max_attempts": 2}})
        assert updated.name == "renamed"
        assert updated.events == ["user.created", "user.deleted"]
        assert updated.retry["max_attempts"] == 2
        assert updated.retry["initial_delay_ms"] == 5000
        assert "secret" not in updated.auth.model_extra
        events = await trail(pg, account.account_id, "webhook.updated")
        assert len(events) == 1
        assert "name" in events[0]["data"]

    async def test_pause_and_resume_record_their_events(
            self, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool) -> None:
        hook = await admin.webhooks.create(body())
        paused = await admin.webhooks.update(hook.id, {"status": "paused", "status_reason": "maintenance"})
        assert paused.status == "paused"
        assert paused.status_reason == "maintenance"
        assert paused.status_at
        resumed = await admin.webhook(hook.id).update({"status": "active"})
        assert resumed.status == "active"
        assert len(await trail(pg, account.account_id, "webhook.paused")) == 1
        assert len(await trail(pg, account.account_id, "webhook.resumed")) == 1
        assert len(await trail(pg, account.account_id, "webhook.updated")) == 0

    async def test_rotation_returns_a_new_secret_and_both_sign_for_the_grace_period(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str, pg: asyncpg.Pool) -> None:
        from tests.webhooks.conftest import emit

        hook = await create_hook(admin, receiver, path, ["user.created"])
        old = hook.auth.model_extra["secret"]
        rotated = await admin.webhooks.update(hook.id, {"auth": {"type": "signature", "rotate": True}})
        new = rotated.auth.model_extra["secret"]
        assert new.startswith("whsec_")
        assert new != old
        assert rotated.auth.model_extra["previous_secret_expires_at"] > rotated.updated_at
        receiver.secrets[path] = [old, new]
        await emit(app, account.account_id, "user.created", "usr_rot")
        got = await receiver.wait_for(path, 1)
        assert set(got[0].verified_with) == {old, new}
        assert len(got[0].headers["webhook-signature"].split(" ")) == 2
        # A rotation without grace drops the old secret at once.
        again = await admin.webhooks.update(hook.id, {"auth": {"type": "signature", "rotate": True,
                                                                "grace_period_seconds": 0}})
        newest = again.auth.model_extra["secret"]
        receiver.secrets[path] = [new, newest]
        await emit(app, account.account_id, "user.created", "usr_rot2")
        got = await receiver.wait_for(path, 2)
        assert got[1].verified_with == [newest]
        assert (await admin.webhooks.get(hook.id)).auth.model_extra.get("secret") is None

    async def test_if_match_mismatch_is_412(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                            account: AccountCredentials) -> None:
        hook = await admin.webhooks.create(body())
        resp = await client.patch(f"/v1/accounts/{account.account_id}/webhooks/{hook.id}",
                                  json={"name": "x"}, headers={"if-match": '"1"'}, auth=account.basic)
        assert resp.status_code == 412

    async def test_refuses_bad_changes_and_writes_nothing(
            self, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool) -> None:
        hook = await admin.webhooks.create(body())
        for bad in ({"events": ["user.*"]}, {"retry": {"multiplier": 99}}, {"status": "deleted"},
                    {"url": "ftp://x"}, {"auth": {"type": "signature", "rotate": "maybe"}}):
            with pytest.raises(ValidationError) as err:
                await admin.webhooks.update(hook.id, bad)
            assert err.value.fields
        assert len(await trail(pg, account.account_id, "webhook.updated")) == 0
        assert (await admin.webhooks.get(hook.id)).updated_at is None


class TestDeleteWebhook:
    async def test_deletes_with_its_deliveries_and_records_the_event(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool) -> None:
        from tests.webhooks.conftest import emit

        hook = await admin.webhooks.create(body(status="paused"))
        await emit(app, account.account_id, "user.created", "usr_del")
        assert await count_rows(pg, "webhook_deliveries", account.account_id) == 1
        await admin.webhooks.delete(hook.id)
        with pytest.raises(NotFoundError):
            await admin.webhooks.get(hook.id)
        assert await count_rows(pg, "webhook_deliveries", account.account_id) == 0
        assert len(await trail(pg, account.account_id, "webhook.deleted")) == 1


class TestWebhookIsolation:
    async def test_another_accounts_key_gets_404_everywhere(
            self, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            other_account: AccountCredentials, pg: asyncpg.Pool) -> None:
        hook = await admin.webhooks.create(body())
        base = f"/v1/accounts/{account.account_id}/webhooks"
        calls = [("GET", base, None), ("POST", base, body()), ("GET", f"{base}/{hook.id}", None),
                 ("PATCH", f"{base}/{hook.id}", {"name": "x"}), ("DELETE", f"{base}/{hook.id}", None),
                 ("GET", f"{base}/{hook.id}/deliveries", None),
                 ("POST", f"{base}/{hook.id}/deliveries/whd_01aaaaaaaaaaaaaaaaaaaaaaaa/redeliver", None),
                 ("POST", f"{base}/{hook.id}/redeliver", {})]
        for method, url, payload in calls:
            resp = await client.request(method, url, json=payload, auth=other_account.basic)
            assert resp.status_code == 404, (method, url, resp.status_code)
        # Its own account path does not reach the other account's webhook either.
        own = f"/v1/accounts/{other_account.account_id}/webhooks/{hook.id}"
        for method in ("GET", "PATCH", "DELETE"):
            resp = await client.request(method, own, json={"name": "x"} if method == "PATCH" else None,
                                        auth=other_account.basic)
            assert resp.status_code == 404
        assert (await admin.webhooks.get(hook.id)).name == "crm"
