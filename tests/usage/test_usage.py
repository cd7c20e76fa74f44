"""Usage from the trail and the billing answers, parsed by the official SDK (SDK-CONTRACT §2.4-2.7)."""

from __future__ import annotations

import time

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ApiError, NotFoundError, ValidationError
from authpi_admin.generated.resources.credits import CreditsResource
from authpi_admin.generated.resources.invoices import InvoicesResource
from authpi_admin.generated.resources.payment_methods import PaymentMethodsResource
from authpi_admin.generated.resources.usage import UsageResource
from fastapi import FastAPI

from app.events.service import record
from tests.conftest import AccountCredentials, count_rows


def resources(admin: AuthPIAdmin, account_id: str) -> tuple[UsageResource, InvoicesResource,
                                                              CreditsResource, PaymentMethodsResource]:
    base = f"/v1/accounts/{account_id}"
    return (UsageResource(admin.http, base + "/usage"), InvoicesResource(admin.http, base + "/invoices"),
            CreditsResource(admin.http, base + "/credits"),
            PaymentMethodsResource(admin.http, base + "/payment-methods"))


async def emit(app: FastAPI, account_id: str, events: list[tuple[str, str | None]],
               timestamp: int | None = None) -> None:
    async with app.state.db.unit_of_work() as session:
        for type_, user_id in events:
            await record(session, type=type_, account_id=account_id, user_id=user_id,
                         subject={"type": "user", "id": user_id or "x"}, auth={"type": "system"},
                         timestamp=timestamp)


def lines_of(page) -> dict[str, tuple[int | None, int]]:  # noqa: ANN001
    assert len(page.data) == 1
    return {line.dimension: (line.count, line.line_count) for line in page.data[0].lines}


async def test_usage_counts_the_trail_by_dimension(app: FastAPI, admin: AuthPIAdmin,
                                                   account: AccountCredentials):
    usage, *_ = resources(admin, account.account_id)
    await emit(app, account.account_id, [
        ("session.created", "usr_a"), ("session.created", "usr_a"), ("session.token-refreshed", "usr_b"),
        ("machine.token.issued", None), ("api-key.verified", None), ("api-key.verified", None),
        ("user.created", "usr_c")])
    # Last year's events are another period.
    await emit(app, account.account_id, [("session.created", "usr_old")],
               timestamp=int((time.time() - 400 * 86400) * 1000))
    period = time.strftime("%Y-%m", time.gmtime())
    page = await usage.list(period=period)
    assert page.has_more is False
    assert page.data[0].period == period
    got = lines_of(page)
    assert got["monthly_active_users"] == (2, 2)
    assert got["tokens_issued"] == (4, 4)
    # The SDK's own calls verify the key too (metered api-key.verified, batched): at least ours.
    assert got["api_key_verifications"][0] >= 2
    assert got["webhook_deliveries"] == (0, 0)
    assert all(line.amount_μusd == 0 for line in page.data[0].lines)

    empty = lines_of(await usage.list(period="2001-01"))
    assert set(empty.values()) == {(0, 0)}


async def test_usage_estimate_is_self_hosted_and_free(admin: AuthPIAdmin, account: AccountCredentials):
    usage, *_ = resources(admin, account.account_id)
    estimate = await usage.estimate()
    assert estimate.billing_profile == "self_hosted"
    assert estimate.total_μusd == 0
    assert estimate.period == time.strftime("%Y-%m", time.gmtime())
    assert {line["dimension"] for line in estimate.lines} == {
        "monthly_active_users", "tokens_issued", "api_key_verifications", "webhook_deliveries"}


@pytest.mark.parametrize("period", ["2026-13", "26-01", "2026-1", "last-month"])
async def test_a_malformed_period_is_422(admin: AuthPIAdmin, account: AccountCredentials, period: str):
    usage, *_ = resources(admin, account.account_id)
    with pytest.raises(ValidationError) as e:
        await usage.list(period=period)
    assert e.value.status_code == 422


async def test_invoices_and_ledger_are_empty_pages(admin: AuthPIAdmin, account: AccountCredentials):
    _, invoices, credits, _ = resources(admin, account.account_id)
    page = await invoices.list(limit=12)
    assert page.data == []
    assert page.has_more is False
    ledger = await credits.ledger(limit=20)
    assert ledger.data == []
    assert ledger.has_more is False
    assert [e async for e in credits.ledger_all()] == []


async def test_payments_are_501_in_the_error_shape_and_change_nothing(
        admin: AuthPIAdmin, account: AccountCredentials, client: httpx.AsyncClient, pg: asyncpg.Pool):
    _, _, credits, methods = resources(admin, account.account_id)
    before = await count_rows(pg, "events", account.account_id)
    calls = [credits.create_topup({"amount_μusd": 5_000_000}), methods.create({"type": "x402"}),
             methods.setup_intent_stripe(), methods.update("pm_1", {"name": "x"}), methods.delete("pm_1")]
    for call in calls:
        with pytest.raises(ApiError) as e:
            await call
        assert e.value.status_code == 501
        assert e.value.error == "not_implemented"
        assert "self-hosted" in e.value.error_description
    raw = await client.post(f"/v1/accounts/{account.account_id}/credits/topups", json={},
                            auth=account.basic)
    assert raw.status_code == 501
    assert set(raw.json()) == {"error", "error_description", "retryable"}
    assert await count_rows(pg, "events", account.account_id) == before


async def test_another_account_is_404(admin: AuthPIAdmin, other_account: AccountCredentials):
    usage, invoices, *_ = resources(admin, other_account.account_id)
    with pytest.raises(NotFoundError):
        await usage.list()
    with pytest.raises(NotFoundError):
        await invoices.list()


async def test_docs_and_redoc_load_only_local_assets(client: httpx.AsyncClient):
    for path in ("/docs", "/redoc"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "cdn." not in page.text
        assert "https://" not in page.text.split("</head>")[0]
        for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css") if path == "/docs" \
                else ("/docs-assets/redoc.standalone.js",):
            assert asset in page.text
            got = await client.get(asset)
            assert got.status_code == 200
            assert len(got.content) > 10_000


async def test_docs_pages_allow_no_other_origin(client: httpx.AsyncClient):
    for path in ("/docs", "/redoc"):
        csp = (await client.get(path)).headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "img-src 'self' data:" in csp
