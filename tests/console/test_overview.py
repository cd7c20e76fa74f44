"""The overview's charts: per-day counts from the events aggregate, drawn as server-rendered SVG."""

from __future__ import annotations

import re
import time

import httpx
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.events.service import record
from tests.conftest import AccountCredentials

DAY = 86_400_000


async def emit(app: FastAPI, account_id: str, type_: str, timestamps: list[int]) -> None:
    async with app.state.db.unit_of_work() as session:
        for ts in timestamps:
            await record(
                session,
                type=type_,
                account_id=account_id,
                user_id="usr_x",
                subject={"type": "session", "id": "s_x"},
                auth={"type": "system"},
                timestamp=ts,
            )


async def test_day_buckets_are_whole_days(app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials):
    today = int(time.time() * 1000) // DAY * DAY
    await emit(app, account.account_id, "session.created", [today + 1000, today + 2000, today - DAY + 5])
    result = await admin.events.aggregate(interval="day", event_types="session.created")
    assert {b["start"]: b["count"] for b in result.buckets} == {today - DAY: 1, today: 2}
    assert all(b["end"] - b["start"] == DAY for b in result.buckets)


async def test_overview_draws_the_counts(
    app: FastAPI, console: httpx.AsyncClient, account: AccountCredentials
):
    today = int(time.time() * 1000) // DAY * DAY
    await emit(app, account.account_id, "session.created", [today + 1000, today + 2000, today - 3 * DAY])
    page = await console.get("/console")
    assert page.status_code == 200
    assert "<strong>Sign-ins</strong>: 3 in 14 days" in page.text
    label = re.search(r'aria-label="(Sign-ins per day[^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    counts = [int(n) for n in label.split(": ", 1)[1].split(", ")]
    assert len(counts) == 14
    assert counts[-1] == 2
    assert counts[-4] == 1
    assert "<script" not in page.text.split("</head>")[1]  # no inline script in the body
