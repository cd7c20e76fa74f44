"""Usage from the trail and the billing operations of the SDK (SDK-CONTRACT §2.4-2.7).

A self-hosted server has no invoices, credits or payment methods: the reads answer empty pages,
the writes 501 in the contract's error shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal, scoped
from app.core.responses import ErrorBody
from app.core.session import db_session
from app.usage import service
from app.usage.schemas import (
    CreditLedgerPage,
    InvoicePage,
    UsageByDimension,
    UsageEstimate,
    UsageEstimateEnvelope,
    UsagePage,
)

router = APIRouter(tags=["usage"])
A = "/accounts/{account_id}"
# These operations always refuse: 501 is their only documented answer besides the shared errors.
NOT_SELF_HOSTED: dict[str, object] = {"status_code": 501, "response_model": ErrorBody,
                                      "response_description": "Billing is not part of a self-hosted server"}


@router.get(A + "/usage", response_model=UsagePage)
async def list_usage(
    account_id: str,
    period: str | None = Query(None, max_length=7, description="YYYY-MM (UTC); default this month"),
    _: Principal = Depends(scoped("usage", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> UsagePage:
    """Counts by dimension for one month, from the event trail."""
    p = service.parse_period(period)
    lines = await service.usage_lines(session, account_id, p)
    return UsagePage(data=[UsageByDimension(period=p.label, lines=lines)])


@router.get(A + "/usage/estimate", response_model=UsageEstimateEnvelope)
async def usage_estimate(
    account_id: str,
    _: Principal = Depends(scoped("usage", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> UsageEstimateEnvelope:
    """This month's usage; a self-hosted server charges nothing (total 0, profile self_hosted)."""
    p = service.parse_period(None)
    lines = await service.usage_lines(session, account_id, p)
    return UsageEstimateEnvelope(
        data=UsageEstimate(period=p.label, as_of=service.as_of(), lines=[line.model_dump() for line in lines])
    )


@router.get(A + "/invoices", response_model=InvoicePage)
async def list_invoices(
    account_id: str,
    limit: int | None = Query(None, ge=1, le=100),
    _: Principal = Depends(scoped("invoices", "read")),
) -> InvoicePage:
    """Always empty: a self-hosted server issues no invoices."""
    return InvoicePage(data=[])


@router.get(A + "/credits/ledger", response_model=CreditLedgerPage)
async def credits_ledger(
    account_id: str,
    limit: int | None = Query(None, ge=1, le=100),
    cursor: str | None = Query(None, max_length=512),
    _: Principal = Depends(scoped("credits", "read")),
) -> CreditLedgerPage:
    """Always empty: a self-hosted server keeps no credit balance."""
    return CreditLedgerPage(data=[])


@router.post(A + "/credits/topups", **NOT_SELF_HOSTED)
async def create_topup(account_id: str, _: Principal = Depends(scoped("credits", "write"))) -> None:
    """Refused: 501."""
    raise service.BillingNotAvailable()


@router.post(A + "/payment-methods", **NOT_SELF_HOSTED)
async def create_payment_method(
    account_id: str, _: Principal = Depends(scoped("payment_methods", "write"))
) -> None:
    """Refused: 501."""
    raise service.BillingNotAvailable()


@router.post(A + "/payment-methods/stripe/setup-intent", **NOT_SELF_HOSTED)
async def payment_setup_intent(
    account_id: str, _: Principal = Depends(scoped("payment_methods", "write"))
) -> None:
    """Refused: 501."""
    raise service.BillingNotAvailable()


@router.patch(A + "/payment-methods/{method_id}", **NOT_SELF_HOSTED)
async def update_payment_method(
    account_id: str, method_id: str, _: Principal = Depends(scoped("payment_methods", "write"))
) -> None:
    """Refused: 501."""
    raise service.BillingNotAvailable()


@router.delete(A + "/payment-methods/{method_id}", **NOT_SELF_HOSTED)
async def delete_payment_method(
    account_id: str, method_id: str, _: Principal = Depends(scoped("payment_methods", "write"))
) -> None:
    """Refused: 501."""
    raise service.BillingNotAvailable()
