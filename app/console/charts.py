"""Overview charts: server-rendered SVG bar charts of the last 14 days.

Sign-ins, tokens issued and key verifications come from the events aggregate (the same endpoint
function the API serves as `events.aggregate`, by day); webhook failures from the deliveries that
ended `failed`, by the day of their last attempt.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.console.web import Operator
from app.events.endpoints import EventFilters, aggregate_events
from app.models.webhook_delivery import WebhookDelivery

DAY_MS = 86_400_000
DAYS = 14
SERIES = (
    ("Sign-ins", ("session.created",)),
    ("Tokens issued", ("session.created", "session.token-refreshed", "machine.token.issued")),
    ("Key verifications", ("api-key.verified",)),
)


@dataclass
class Chart:
    title: str
    total: int
    svg: Markup


def _days() -> list[int]:
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    return [today - (DAYS - 1 - i) * DAY_MS for i in range(DAYS)]


async def _aggregate(
    session: AsyncSession, operator: Operator, types: tuple[str, ...], since: int
) -> dict[int, int]:
    filters = EventFilters(
        issuer_id=None,
        user_id=None,
        client_id=None,
        event_types=",".join(types),
        after=since - 1,
        before=None,
    )
    response = await aggregate_events(
        account_id=operator.account_id,
        filters=filters,
        group_by=None,
        interval="day",
        count_unique=None,
        _=operator.principal,
        session=session,
    )
    buckets: list[dict[str, Any]] = json.loads(bytes(response.body))["data"]["buckets"]
    return {int(b["start"]): int(b["count"]) for b in buckets}


async def _webhook_failures(session: AsyncSession, account_id: str, since: int) -> dict[int, int]:
    day = (WebhookDelivery.last_attempted_at // DAY_MS * DAY_MS).label("day")
    rows = await session.execute(
        select(day, func.count())
        .where(
            WebhookDelivery.account_id == account_id,
            WebhookDelivery.status == "failed",
            WebhookDelivery.last_attempted_at >= since,
        )
        .group_by(day)
    )
    return {int(d): int(c) for d, c in rows.all()}


def bar_svg(title: str, days: list[int], counts: dict[int, int], *, failure: bool = False) -> Markup:
    width, height, pad = 300, 130, 18
    peak = max([counts.get(d, 0) for d in days] + [1])
    step = (width - 2 * pad) / len(days)
    bars = []
    for i, d in enumerate(days):
        n = counts.get(d, 0)
        h = (height - 2 * pad) * n / peak
        x, y = pad + i * step + 1, height - pad - h
        label = time.strftime("%b %d", time.gmtime(d / 1000))
        bars.append(
            f'<rect class="bar{" fail" if failure else ""}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{step - 2:.1f}" height="{h:.1f}"><title>{label}: {n}</title></rect>'
        )
    first = time.strftime("%b %d", time.gmtime(days[0] / 1000))
    last = time.strftime("%b %d", time.gmtime(days[-1] / 1000))
    summary = escape(f"{title} per day, {first} to {last}: " + ", ".join(str(counts.get(d, 0)) for d in days))
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{summary}">'
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>'
        + "".join(bars)
        + f'<text x="{pad}" y="{height - 4}">{first}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">{last}</text>'
        f'<text x="{pad}" y="12">max {peak}</text></svg>'
    )


async def overview_charts(session: AsyncSession, operator: Operator) -> list[Chart]:
    days = _days()
    charts = []
    for title, types in SERIES:
        counts = await _aggregate(session, operator, types, days[0])
        charts.append(Chart(title, sum(counts.values()), bar_svg(title, days, counts)))
    if operator.can("webhooks"):
        failures = await _webhook_failures(session, operator.account_id, days[0])
        charts.append(
            Chart(
                "Webhook failures",
                sum(failures.values()),
                bar_svg("Webhook failures", days, failures, failure=True),
            )
        )
    return charts
