"""Usage counted from the event trail; billing answered as "not part of a self-hosted server"."""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ApiError, ValidationFailed
from app.core.ids import now_ms
from app.models.event import Event
from app.models.webhook_delivery import WebhookDelivery
from app.usage.schemas import UsageLine

# A sign-in (a new session or a refresh of one, or a verified credential) makes a user active.
ACTIVE_USER_EVENTS = ("session.created", "session.token-refreshed", "user.verification.succeeded")
# Every token the issuers hand out: a code exchange (session.created), a refresh, a machine token.
TOKEN_EVENTS = ("session.created", "session.token-refreshed", "machine.token.issued")
VERIFICATION_EVENTS = ("api-key.verified",)

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class BillingNotAvailable(ApiError):
    """Payments are not part of a self-hosted server: 501 in the contract's error shape."""

    status_code = 501
    error = "not_implemented"

    def __init__(self) -> None:
        super().__init__(
            "Billing is not part of a self-hosted authpi server: there are no top-ups, "
            "payment methods or invoices. Usage is counted at GET {account}/usage."
        )


@dataclass(frozen=True)
class Period:
    label: str
    start_ms: int
    end_ms: int


def current_period() -> str:
    return time.strftime("%Y-%m", time.gmtime())


def parse_period(value: str | None) -> Period:
    """`YYYY-MM` (UTC month); absent means the current month."""
    label = value or current_period()
    m = _PERIOD.match(label)
    if not m:
        raise ValidationFailed("period must be YYYY-MM", field="period")
    year, month = int(m.group(1)), int(m.group(2))
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    end = calendar.timegm((year + (month == 12), month % 12 + 1, 1, 0, 0, 0))
    return Period(label, start * 1000, end * 1000)


async def usage_lines(session: AsyncSession, account_id: str, period: Period) -> list[UsageLine]:
    """The four dimensions of `period`, counted from the account's trail."""
    in_period = (
        Event.account_id == account_id,
        Event.timestamp >= period.start_ms,
        Event.timestamp < period.end_ms,
    )
    mau = await session.scalar(
        select(func.count(func.distinct(Event.user_id))).where(
            *in_period, Event.user_id.is_not(None), Event.type.in_(ACTIVE_USER_EVENTS)
        )
    )
    tokens = await session.scalar(select(func.count()).where(*in_period, Event.type.in_(TOKEN_EVENTS)))
    verifications = await session.scalar(
        select(func.count()).where(*in_period, Event.type.in_(VERIFICATION_EVENTS))
    )
    deliveries = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.account_id == account_id,
            WebhookDelivery.created_at >= period.start_ms,
            WebhookDelivery.created_at < period.end_ms,
        )
    )
    counts = {
        "monthly_active_users": mau,
        "tokens_issued": tokens,
        "api_key_verifications": verifications,
        "webhook_deliveries": deliveries,
    }
    return [UsageLine(dimension=d, count=int(c or 0), line_count=int(c or 0)) for d, c in counts.items()]


def as_of() -> int:
    return now_ms()
