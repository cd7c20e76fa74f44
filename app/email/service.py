"""Email through the outbox: render (branded per issuer), enqueue in the caller's transaction; the
relay sends it (SMTP or the development mailbox) and records `email.sent` / `email.failed`.

A message's purpose (e.g. "invitation") may register `on_email_sent(purpose, hook)` to update its
object once the message went out (the invitation's `last_email_sent_at`), in the relay's
transaction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.errors import Conflict
from app.email.render import render_email
from app.email.transport import email_problem, transmit
from app.events.service import record
from app.issuer.branding import make_brand
from app.models.issuer import Issuer
from app.models.organization import Organization
from app.models.outbox import OutboxMessage
from app.outbox.registry import DeliveryContext, Kind, PermanentFailure, register_kind
from app.outbox.service import enqueue

log = logging.getLogger("authpi.email")
KIND = "email"

SentHook = Callable[[AsyncSession, OutboxMessage, dict[str, Any]], Awaitable[None]]
_SENT_HOOKS: dict[str, SentHook] = {}


def on_email_sent(purpose: str, hook: SentHook) -> None:
    _SENT_HOOKS[purpose] = hook


@dataclass(frozen=True)
class Mailer:
    """What a service needs to queue mail: the settings and the server key."""

    settings: Settings
    server_key: str

    def problem(self) -> str | None:
        return email_problem(self.settings)

    def require(self) -> None:
        """Refuse a flow that needs email when mail cannot be delivered (production without SMTP)."""
        problem = self.problem()
        if problem:
            raise Conflict(f"This needs email, and {problem}")

    def link(self, path: str) -> str:
        return self.settings.resolved_public_url() + path


def get_mailer(request: Request) -> Mailer:
    """FastAPI dependency: the app's mailer."""
    return Mailer(settings=request.app.state.settings, server_key=request.app.state.secret_key)


async def issuer_brand(session: AsyncSession, account_id: str, issuer_id: str,
                       org: Organization | None = None) -> dict[str, Any]:
    row = (await session.execute(select(Issuer.name, Issuer.settings).where(
        Issuer.id == issuer_id, Issuer.account_id == account_id))).first()
    name, settings = (row[0], row[1]) if row else (issuer_id, {})
    return dataclasses.asdict(make_brand(name, (settings or {}).get("branding"), org))


async def queue_email(session: AsyncSession, mailer: Mailer, *, account_id: str, issuer_id: str,
                      to: str, template: str, context: dict[str, Any], purpose: str,
                      ref_id: str | None = None, user_id: str | None = None,
                      org: Organization | None = None) -> OutboxMessage:
    """Render `template` for `to` and put it in the outbox, in the caller's transaction."""
    mailer.require()
    brand = await issuer_brand(session, account_id, issuer_id, org)
    rendered = render_email(template, {**context, "brand": brand}, mailer.settings.email_templates_dir)
    payload = {"to": to, "subject": rendered.subject, "text": rendered.text, "html": rendered.html,
               "template": template, "user_id": user_id, "org_id": org.id if org else None,
               "from_name": brand["name"]}
    return await enqueue(session, server_key=mailer.server_key,
                         public_url=mailer.settings.resolved_public_url(), kind=KIND,
                         account_id=account_id, issuer_id=issuer_id, payload=payload,
                         purpose=purpose, ref_id=ref_id)


def build_message(settings: Settings, row: OutboxMessage, payload: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Message-ID"] = row.message_id
    message["Date"] = formatdate(row.created_at / 1000, usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    return message


async def _deliver(ctx: DeliveryContext, row: OutboxMessage, payload: dict[str, Any]) -> None:
    if not payload.get("to"):
        raise PermanentFailure("the message has no payload (already sent or erased)")
    try:
        await transmit(ctx.settings, build_message(ctx.settings, row, payload), row.id)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            raise PermanentFailure(f"recipient refused ({codes[0]})") from None
        raise


def _event_args(row: OutboxMessage, payload: dict[str, Any]) -> dict[str, Any]:
    return {"account_id": row.account_id, "issuer_id": row.issuer_id, "org_id": payload.get("org_id"),
            "user_id": payload.get("user_id"),
            "subject": {"type": "email", "id": row.id, "purpose": row.purpose, "ref_id": row.ref_id},
            "auth": {"type": "system", "component": "outbox"}}


async def _on_sent(session: AsyncSession, row: OutboxMessage, payload: dict[str, Any]) -> None:
    await record(session, type="email.sent", **_event_args(row, payload),
                 data={"message_id": row.message_id, "template": payload.get("template"),
                       "to": payload.get("to"), "attempts": row.attempts})
    hook = _SENT_HOOKS.get(row.purpose or "")
    if hook is not None:
        await hook(session, row, payload)


async def _on_failed(session: AsyncSession, row: OutboxMessage, payload: dict[str, Any], error: str,
                     final: bool) -> None:
    await record(session, type="email.failed", **_event_args(row, payload),
                 data={"message_id": row.message_id, "template": payload.get("template"),
                       "to": payload.get("to"), "attempts": row.attempts, "final": final,
                       "error": error[:300], "next_attempt_at": None if final else row.next_attempt_at})


register_kind(Kind(name=KIND, deliver=_deliver, on_sent=_on_sent, on_failed=_on_failed))
