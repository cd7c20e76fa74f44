"""Webhooks and their deliveries (SDK-CONTRACT §2.11-2.12)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import check_if_match
from app.core.pagination import PageParams, page_params, paginate
from app.core.responses import Obj, Page, with_fields
from app.core.session import db_session
from app.core.validation import MAX_TIMESTAMP_MS
from app.models.webhook import Webhook
from app.models.webhook_delivery import WebhookDelivery
from app.webhooks import service
from app.webhooks.delivery import Sender
from app.webhooks.schemas import (
    DeliveryOut,
    DeliveryTestOut,
    RedeliverFailed,
    RedeliveryOut,
    WebhookCreate,
    WebhookListItem,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(tags=["webhooks"])
BASE = "/accounts/{account_id}/webhooks"


def _sender(request: Request) -> Sender:
    sender = getattr(request.app.state, "webhook_sender", None)
    if sender is None:  # an app run without its lifespan (the lifecycle normally creates it)
        settings = request.app.state.settings
        sender = Sender(timeout_seconds=settings.webhooks_timeout_seconds,
                        allow_private=settings.webhooks_allow_private)
        request.app.state.webhook_sender = sender
    return sender


@router.get(BASE, response_model=Page[WebhookListItem])
async def list_webhooks(
    account_id: str,
    status: str | None = Query(None, max_length=32),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(scoped("webhooks", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The account's webhooks, newest first."""
    rows, has_more, cursor = await paginate(session, service.list_webhooks_stmt(account_id, status),
                                            Webhook.id, params)
    return envelopes.page([WebhookListItem.of(w) for w in rows], has_more=has_more, next_cursor=cursor)


@router.post(BASE, status_code=201, response_model=Obj[WebhookOut])
async def create_webhook(
    account_id: str,
    body: WebhookCreate,
    request: Request,
    principal: Principal = Depends(scoped("webhooks", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Create a webhook; the signing secret is in the response's auth, this once."""
    settings = request.app.state.settings
    webhook, secret = await service.create_webhook(
        session, account_id, body, principal, server_key=request.app.state.secret_key,
        allow_private=settings.webhooks_allow_private)
    return envelopes.created(WebhookOut.of_webhook(webhook, new_secret=secret))


@router.get(BASE + "/{webhook_id}", response_model=Obj[WebhookOut])
async def get_webhook(
    account_id: str,
    webhook_id: str,
    _: Principal = Depends(scoped("webhooks", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One webhook (its secret is never shown again)."""
    return envelopes.obj(WebhookOut.of(await service.get_webhook(session, account_id, webhook_id)))


@router.patch(BASE + "/{webhook_id}", response_model=Obj[WebhookOut])
async def update_webhook(
    account_id: str,
    webhook_id: str,
    body: WebhookUpdate,
    request: Request,
    principal: Principal = Depends(scoped("webhooks", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a webhook; status pauses or resumes it; auth.rotate issues a new secret."""
    settings = request.app.state.settings
    webhook = await service.get_webhook(session, account_id, webhook_id, lock=True)
    check_if_match(request, webhook.version)
    webhook, secret = await service.update_webhook(
        session, webhook, body, principal, server_key=request.app.state.secret_key,
        allow_private=settings.webhooks_allow_private, grace_seconds=settings.webhooks_secret_grace_seconds)
    return envelopes.obj(WebhookOut.of_webhook(webhook, new_secret=secret))


@router.delete(BASE + "/{webhook_id}", status_code=204)
async def delete_webhook(
    account_id: str,
    webhook_id: str,
    request: Request,
    principal: Principal = Depends(scoped("webhooks", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a webhook and its delivery records."""
    webhook = await service.get_webhook(session, account_id, webhook_id, lock=True)
    check_if_match(request, webhook.version)
    await service.delete_webhook(session, webhook, principal)
    return envelopes.no_content()


@router.get(BASE + "/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(
    account_id: str,
    webhook_id: str,
    event_type: str | None = Query(None, max_length=80),
    status: str | None = Query(None, max_length=32),
    after: float | None = Query(None, ge=0, le=MAX_TIMESTAMP_MS, allow_inf_nan=False,
                                       description="Created after (Unix ms, exclusive)"),
    before: float | None = Query(None, ge=0, le=MAX_TIMESTAMP_MS, allow_inf_nan=False,
                                       description="Created before (Unix ms, exclusive)"),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(scoped("webhooks", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The webhook's deliveries, newest first."""
    webhook = await service.get_webhook(session, account_id, webhook_id)
    stmt = service.list_deliveries_stmt(webhook, event_type=event_type, status=status, after=after,
                                        before=before)
    rows, has_more, cursor = await paginate(session, stmt, WebhookDelivery.id, params)
    return envelopes.page([DeliveryOut.of(d) for d in rows], has_more=has_more, next_cursor=cursor)


@router.post(BASE + "/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=Obj[DeliveryTestOut])
async def redeliver_delivery(
    account_id: str,
    webhook_id: str,
    delivery_id: str,
    request: Request,
    _: Principal = Depends(scoped("webhooks", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Attempt one delivery again now; `success` reports this attempt."""
    webhook = await service.get_webhook(session, account_id, webhook_id)
    delivery, ok = await service.redeliver_one(session, webhook, delivery_id, sender=_sender(request),
                                               server_key=request.app.state.secret_key,
                                               precondition=lambda d: check_if_match(request, d.version))
    return envelopes.obj(DeliveryTestOut.model_validate(with_fields(delivery, success=ok)))


@router.post(BASE + "/{webhook_id}/redeliver", response_model=Obj[RedeliveryOut])
async def redeliver_failed(
    account_id: str,
    webhook_id: str,
    body: RedeliverFailed = Body(...),
    _: Principal = Depends(scoped("webhooks", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Requeue the failed deliveries created in a window (after/before, Unix ms)."""
    webhook = await service.get_webhook(session, account_id, webhook_id)
    return envelopes.obj(RedeliveryOut(**await service.redeliver_failed(session, webhook, body)))
