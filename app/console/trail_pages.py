"""Events (filters, JSON, live tail), webhooks (deliveries, redeliver, pause/resume), account API keys
and agents: the same services and queries as the admin API, as the signed-in operator's key."""

from __future__ import annotations

import calendar
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.schemas import AUTHPI_ISSUER_ID
from app.account.service import get_account
from app.agent import service as agent_service
from app.api_key import service as key_service
from app.api_key.schemas import CreateApiKey, StatusChange, display_status
from app.console.pages import OP, _issuer_filter, _t, chosen_issuer, next_url, page_params, q
from app.console.web import (
    SECURITY_HEADERS,
    ConsoleRefusal,
    FormErrors,
    Operator,
    check_csrf,
    lines,
    parse_body,
    read,
    redirect,
    render,
    require,
    run,
)
from app.core.errors import NotFound
from app.core.pagination import paginate
from app.events.catalog import ALL_EVENT_TYPES
from app.events.service import event_to_api
from app.models.event import Event
from app.models.webhook import Webhook
from app.models.webhook_delivery import WebhookDelivery
from app.webhooks import service as webhook_service
from app.webhooks.endpoints import _sender
from app.webhooks.schemas import RedeliverFailed, WebhookUpdate

router = APIRouter(include_in_schema=False)
TYPE_OPTIONS = [("", "Any type")] + [(t, t) for t in sorted(ALL_EVENT_TYPES)]


def _parse_time(value: str | None, field: str) -> int | None:
    """A datetime-local value (UTC) -> ms; a malformed one is refused with a clear page."""
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(value, fmt)) * 1000
        except ValueError:
            continue
    raise ConsoleRefusal(400, "Bad filter", f"{field} must be a date and time (YYYY-MM-DDTHH:MM, UTC).")


def _event_stmt(request: Request, account_id: str) -> Any:
    stmt = select(Event).where(Event.account_id == account_id)
    event_type = q(request, "type", 80)
    if event_type:
        if event_type not in ALL_EVENT_TYPES:
            raise ConsoleRefusal(400, "Bad filter", f"Unknown event type {event_type!r}.")
        stmt = stmt.where(Event.type == event_type)
    subject = q(request, "subject", 64)
    if subject:
        stmt = stmt.where(
            or_(
                Event.subject["id"].astext == subject,
                Event.user_id == subject,
                Event.org_id == subject,
                Event.client_id == subject,
                Event.issuer_id == subject,
            )
        )
    issuer = q(request, "issuer", 64)
    if issuer:
        stmt = stmt.where(Event.issuer_id == issuer)
    after, before = _parse_time(q(request, "after"), "From"), _parse_time(q(request, "before"), "To")
    if after is not None:
        stmt = stmt.where(Event.timestamp >= after)
    if before is not None:
        stmt = stmt.where(Event.timestamp < before)
    return stmt


def _event_row(e: Event) -> dict[str, Any]:
    subject = e.subject or {}
    return {
        "href": f"/console/events/{e.id}",
        "id": e.id,
        "type": e.type,
        "subject": f"{subject.get('type', '')} {subject.get('id', '')}".strip(),
        "time": _t(e.timestamp),
    }


@router.get("/console/events")
async def events(request: Request, operator: Operator = OP) -> Response:
    require(operator, "events", "read")
    params = page_params(request)
    stmt = _event_stmt(request, operator.account_id)
    rows, _, cursor = await read(request, lambda s: paginate(s, stmt, Event.id, params))
    return render(
        request,
        "events.html",
        operator=operator,
        title="Events",
        columns=[("Event", "id"), ("Type", "type"), ("Subject", "subject"), ("Time", "time")],
        rows=[_event_row(e) for e in rows],
        since=rows[0].id if rows else "",
        filters=[
            {
                "name": "type",
                "label": "Type",
                "type": "select",
                "value": q(request, "type") or "",
                "options": TYPE_OPTIONS,
            },
            {"name": "subject", "label": "Subject ID", "value": q(request, "subject") or ""},
            {
                "name": "after",
                "label": "From (UTC)",
                "type": "datetime-local",
                "value": q(request, "after") or "",
            },
            {
                "name": "before",
                "label": "To (UTC)",
                "type": "datetime-local",
                "value": q(request, "before") or "",
            },
        ],
        next_url=next_url(request, cursor),
        empty="No events match.",
    )


@router.get("/console/events/tail")
async def events_tail(request: Request, operator: Operator = OP) -> Response:
    """The live tail's poll: events newer than `after` (an event id), oldest first, at most 50."""
    require(operator, "events", "read")
    after = q(request, "after", 64) or ""
    stmt = (
        select(Event)
        .where(Event.account_id == operator.account_id, Event.id > after)
        .order_by(Event.id.asc())
        .limit(50)
    )
    rows = await read(request, lambda s: s.scalars(stmt))
    found = [_event_row(e) for e in rows]
    return JSONResponse(
        {"events": found[::-1], "since": found[-1]["id"] if found else after}, headers=dict(SECURITY_HEADERS)
    )


@router.get("/console/events/{event_id}")
async def event_detail(request: Request, event_id: str, operator: Operator = OP) -> Response:
    require(operator, "events", "read")

    async def load(s: AsyncSession) -> Event:
        event = await s.scalar(
            select(Event).where(Event.id == event_id, Event.account_id == operator.account_id)
        )
        if event is None:
            raise NotFound("event")
        return event

    event = await read(request, load)
    return render(
        request,
        "event.html",
        operator=operator,
        title=f"Event {event.type}",
        event=event,
        body=event_to_api(event),
    )


# -- webhooks -------------------------------------------------------------------------------------


@router.get("/console/webhooks")
async def webhooks(request: Request, operator: Operator = OP) -> Response:
    require(operator, "webhooks", "read")
    params = page_params(request)
    stmt = webhook_service.list_webhooks_stmt(operator.account_id, q(request, "status", 32))
    rows, _, cursor = await read(request, lambda s: paginate(s, stmt, Webhook.id, params))
    return render(
        request,
        "list.html",
        operator=operator,
        title="Webhooks",
        new_url="/console/webhooks/new" if operator.can("webhooks", "write") else None,
        new_label="New webhook",
        columns=[("Name", "name"), ("ID", "id"), ("URL", "url"), ("Status", "status")],
        rows=[
            {
                "href": f"/console/webhooks/{w.id}",
                "name": w.name,
                "id": w.id,
                "url": w.url,
                "status": w.status,
            }
            for w in rows
        ],
        filters=[
            {
                "name": "status",
                "label": "Status",
                "type": "select",
                "value": q(request, "status") or "",
                "options": [("", "Any"), ("active", "Active"), ("paused", "Paused")],
            }
        ],
        next_url=next_url(request, cursor),
        empty="No webhooks yet.",
    )


@router.get("/console/webhooks/{webhook_id}")
async def webhook_detail(request: Request, webhook_id: str, operator: Operator = OP) -> Response:
    require(operator, "webhooks", "read")
    params = page_params(request)
    status = q(request, "status", 32)

    async def load(s: AsyncSession) -> Any:
        webhook = await webhook_service.get_webhook(s, operator.account_id, webhook_id)
        stmt = webhook_service.list_deliveries_stmt(
            webhook, event_type=q(request, "type", 80), status=status, after=None, before=None
        )
        rows, _, cursor = await paginate(s, stmt, WebhookDelivery.id, params)
        return webhook, rows, cursor

    webhook, deliveries, cursor = await read(request, load)
    return render(
        request,
        "webhook.html",
        operator=operator,
        title=f"Webhook {webhook.name}",
        webhook=webhook,
        deliveries=deliveries,
        next_url=next_url(request, cursor),
        status=status or "",
        flash=request.query_params.get("flash"),
    )


def _back(webhook_id: str, flash: str) -> str:
    return f"/console/webhooks/{webhook_id}?" + urlencode({"flash": flash})


@router.post("/console/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, webhook_id: str, delivery_id: str, operator: Operator = OP) -> Response:
    await check_csrf(request, operator)
    require(operator, "webhooks", "write")

    async def act(s: AsyncSession) -> Any:
        webhook = await webhook_service.get_webhook(s, operator.account_id, webhook_id)
        return await webhook_service.redeliver_one(
            s,
            webhook,
            delivery_id,
            sender=_sender(request),
            server_key=request.app.state.secret_key,
            precondition=lambda d: None,
        )

    result = await run(request, act)
    if isinstance(result, FormErrors):
        return redirect(request, _back(webhook_id, result.message or "Refused"), operator)
    delivery, ok = result
    code = delivery.last_response_status
    flash = (
        f"Redelivered {delivery_id}: "
        + ("succeeded" if ok else "failed again")
        + (f" (HTTP {code})." if code else ".")
    )
    return redirect(request, _back(webhook_id, flash), operator)


@router.post("/console/webhooks/{webhook_id}/redeliver-failed")
async def redeliver_failed(request: Request, webhook_id: str, operator: Operator = OP) -> Response:
    await check_csrf(request, operator)
    require(operator, "webhooks", "write")

    async def act(s: AsyncSession) -> Any:
        webhook = await webhook_service.get_webhook(s, operator.account_id, webhook_id)
        return await webhook_service.redeliver_failed(s, webhook, RedeliverFailed())

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else f"Requeued the failed deliveries: {result}."
    return redirect(request, _back(webhook_id, flash or ""), operator)


@router.post("/console/webhooks/{webhook_id}/status")
async def webhook_status(request: Request, webhook_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "webhooks", "write")
    body = parse_body(WebhookUpdate, {"status": form.get("status", "")})
    settings = request.app.state.settings

    async def act(s: AsyncSession) -> Any:
        webhook = await webhook_service.get_webhook(s, operator.account_id, webhook_id, lock=True)
        webhook, _ = await webhook_service.update_webhook(
            s,
            webhook,
            body,
            operator.principal,
            server_key=request.app.state.secret_key,  # type: ignore[arg-type]
            allow_private=settings.webhooks_allow_private,
            grace_seconds=settings.webhooks_secret_grace_seconds,
        )
        return webhook

    result = body if isinstance(body, FormErrors) else await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else f"Webhook {result.status}."
    return redirect(request, _back(webhook_id, flash or ""), operator)


# -- account API keys -----------------------------------------------------------------------------


@router.get("/console/api-keys")
async def api_keys(request: Request, operator: Operator = OP) -> Response:
    require(operator, "api_keys", "read")
    params = page_params(request)
    filters = key_service.KeyFilters(status=q(request, "status", 32))

    async def load(s: AsyncSession) -> Any:
        filters.validate()
        return await key_service.list_keys(
            s, account_id=operator.account_id, filters=filters, params=params, owner_kind="account"
        )

    rows, _, cursor = await read(request, load)
    return render(
        request,
        "api_keys.html",
        operator=operator,
        title="API keys",
        keys=rows,
        status=q(request, "status", 32) or "",
        display_status=display_status,
        next_url=next_url(request, cursor),
        flash=request.query_params.get("flash"),
        errors=None,
        form={},
    )


@router.post("/console/api-keys/new")
async def create_account_key(request: Request, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "api_keys", "write")
    body = parse_body(
        CreateApiKey,
        {
            "type": "api_key",
            "name": form.get("name", "").strip(),
            "restrictions": {"scopes": lines(form.get("restrictions.scopes"))},
        },
    )

    async def act(s: AsyncSession) -> Any:
        account = await get_account(s, operator.account_id)
        return await key_service.create_account_key(
            s,
            account_id=operator.account_id,
            account_org_id=account.org_id,
            issuer_id=AUTHPI_ISSUER_ID,
            body=body,  # type: ignore[arg-type]
            auth=operator.principal,
        )

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        rows, _, _ = await read(
            request,
            lambda s: key_service.list_keys(
                s,
                account_id=operator.account_id,
                filters=key_service.KeyFilters(),
                params=page_params(request),
                owner_kind="account",
            ),
        )
        return render(
            request,
            "api_keys.html",
            operator=operator,
            title="API keys",
            keys=rows,
            display_status=display_status,
            errors=result,
            form=form,
            status_code=422,
        )
    key, secret = result
    return render(
        request,
        "secret.html",
        operator=operator,
        title="API key created",
        what="Created the account API key",
        object_id=key.id,
        secret=secret,
        next_url="/console/api-keys",
    )


@router.post("/console/api-keys/{key_id}/{verb}")
async def account_key_action(request: Request, key_id: str, verb: str, operator: Operator = OP) -> Response:
    await check_csrf(request, operator)
    require(operator, "api_keys", "write")
    if verb not in ("block", "unblock", "revoke"):
        raise ConsoleRefusal(404, "Not found", "There is no such action.", operator=operator)

    async def act(s: AsyncSession) -> Any:
        key = await key_service.get_key(s, account_id=operator.account_id, key_id=key_id, for_update=True)
        if key.owner_kind != "account":
            raise NotFound("API key")
        if verb == "block":
            return await key_service.block_key(s, key, StatusChange(), operator.principal)
        if verb == "unblock":
            return await key_service.unblock_key(s, key, operator.principal)
        return await key_service.revoke_key(s, key, StatusChange(), operator.principal)

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else f"Key {key_id}: {verb}ed."
    return redirect(request, "/console/api-keys?" + urlencode({"flash": flash or ""}), operator)


# -- agents ---------------------------------------------------------------------------------------


@router.get("/console/agents")
async def agents(request: Request, operator: Operator = OP) -> Response:
    require(operator, "issuers.agents", "read")
    params = page_params(request)

    async def load(s: AsyncSession) -> Any:
        issuer_id, options = await chosen_issuer(request, operator, s)
        if issuer_id is None:
            return None, options, [], None
        rows, _, cursor = await agent_service.list_agents(
            s, account_id=operator.account_id, issuer_id=issuer_id, params=params, filters={}
        )
        return issuer_id, options, rows, cursor

    issuer_id, options, rows, cursor = await read(request, load)
    return render(
        request,
        "list.html",
        operator=operator,
        title="Agents",
        new_url=f"/console/issuers/{issuer_id}/agents/new"
        if issuer_id and operator.can("issuers.agents", "write")
        else None,
        new_label="New agent",
        columns=[("Name", "name"), ("ID", "id"), ("Model", "model"), ("Status", "status")],
        rows=[
            {
                "href": f"/console/issuers/{a.issuer_id}/agents/{a.id}",
                "name": a.name,
                "id": a.id,
                "model": a.model,
                "status": a.status,
            }
            for a in rows
        ],
        filters=_issuer_filter(options, issuer_id),
        next_url=next_url(request, cursor),
        empty="No agents in this issuer." if issuer_id else "Create an issuer first.",
    )


@router.get("/console/issuers/{issuer_id}/agents/{agent_id}")
async def agent_detail(request: Request, issuer_id: str, agent_id: str, operator: Operator = OP) -> Response:
    require(operator, "issuers.agents", "read")

    async def load(s: AsyncSession) -> Any:
        agent = await agent_service.get_agent(
            s, account_id=operator.account_id, issuer_id=issuer_id, agent_id=agent_id
        )
        return agent, await agent_service.list_verifiers(s, agent)

    agent, verifiers = await read(request, load)
    extras = {"verifiers": verifiers}
    return render(
        request,
        "agent.html",
        operator=operator,
        title=f"Agent {agent.name}",
        agent=agent,
        extras=extras,
        flash=request.query_params.get("flash"),
    )
