"""Usage and billing shapes: the SDK's UsageByDimension, AccountUsageEstimate, AccountInvoice and
CreditLedgerEntry (SDK-CONTRACT §2.4-2.6)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# The dimensions a self-hosted server counts from its own trail.
DIMENSIONS = ("monthly_active_users", "tokens_issued", "api_key_verifications", "webhook_deliveries")


class UsageLine(BaseModel):
    dimension: str
    count: int
    line_count: int
    amount_μusd: int = 0


class UsageByDimension(BaseModel):
    period: str
    lines: list[UsageLine]


class UsagePage(BaseModel):
    data: list[UsageByDimension]
    has_more: bool = False
    next_cursor: str | None = None
    invalid_count: int = 0


class UsageEstimate(BaseModel):
    period: str
    as_of: int
    trial: bool = False
    billing_profile: str = "self_hosted"
    estimate: bool = True
    total_μusd: int = 0
    lines: list[dict[str, Any]]


class UsageEstimateEnvelope(BaseModel):
    data: UsageEstimate


class AccountInvoice(BaseModel):
    period: str
    status: str | None
    total_μusd: int | None
    external_reference: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


class InvoicePage(BaseModel):
    data: list[AccountInvoice]
    has_more: bool = False
    next_cursor: str | None = None
    invalid_count: int = 0


class CreditLedgerEntry(BaseModel):
    id: str
    type: str
    amount_μusd: int
    balance_after_μusd: int
    created_at: int


class CreditLedgerPage(BaseModel):
    data: list[CreditLedgerEntry]
    has_more: bool = False
    next_cursor: str | None = None
    invalid_count: int = 0
