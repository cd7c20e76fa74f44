"""Organization groups, invitations, SSO domains and enterprise SSO; user sessions and trusted
devices; new agents and their verifiers; new webhooks. Same services and body models as the admin API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.agent import service as agent_service
from app.agent.schemas import AgentCreate, VerifierCreate
from app.console.pages import OP, org_detail, org_url
from app.console.web import (
    ConsoleRefusal,
    FormErrors,
    Operator,
    check_csrf,
    form_page,
    lines,
    new_in_issuer_page,
    parse_body,
    redirect,
    render,
    require,
    run,
)
from app.core.errors import NotFound, ValidationFailed
from app.email.service import get_mailer
from app.events.catalog import WEBHOOK_EVENT_TYPES
from app.group import service as group_service
from app.group.schemas import GroupCreate
from app.invitation import service as invitation_service
from app.invitation.schemas import InvitationCreate
from app.issuer.dependencies import get_issuer_in_account
from app.models.organization import Organization
from app.organization import service as org_service
from app.organization import sso
from app.organization.dns import resolver_for
from app.organization.endpoints import sso_options
from app.organization.schemas import OrganizationUpdate
from app.session import service as session_service
from app.user import devices as device_service
from app.user import service as user_service
from app.webhooks import service as webhook_service
from app.webhooks.schemas import WebhookCreate

router = APIRouter(include_in_schema=False)
ORG = "/console/issuers/{issuer_id}/organizations/{org_id}"


def prefixed(errors: FormErrors, prefix: str, names: set[str]) -> FormErrors:
    """Field errors of a body model, renamed to the form's (prefixed) input names."""
    return FormErrors(
        errors.message, {(f"{prefix}.{k}" if k in names else k): v for k, v in errors.fields.items()}
    )


async def _org_action(
    request: Request,
    operator: Operator,
    issuer_id: str,
    org_id: str,
    form: dict[str, str],
    act: Callable[[AsyncSession, Organization], Awaitable[str]],
    *,
    lock: bool = False,
    rename: dict[str, str] | None = None,
) -> Response:
    """Run `act` on the organization (resolved in the operator's account), then back to its page."""
    require(operator, "issuers.organizations", "write")

    async def run_it(s: AsyncSession) -> str:
        org = await org_service.resolve_organization(
            s, operator.account_id, issuer_id, org_id, for_update=lock
        )
        return await act(s, org)

    result = await run(request, run_it)
    if isinstance(result, FormErrors):
        result = FormErrors(result.message, {(rename or {}).get(k, k): v for k, v in result.fields.items()})
        return await org_detail(
            request, issuer_id, org_id, operator, errors=result, status_code=422, form=form
        )
    return redirect(request, org_url(issuer_id, org_id) + "?" + urlencode({"flash": result}), operator)


def _body_or_raise(model: type[Any], raw: dict[str, Any], prefix: str | None = None) -> Any:
    body = parse_body(model, raw)
    if isinstance(body, FormErrors):
        raise _Invalid(prefixed(body, prefix, set(raw)) if prefix else body)
    return body


class _Invalid(Exception):
    def __init__(self, errors: FormErrors) -> None:
        self.errors = errors


async def _guard(
    request: Request,
    operator: Operator,
    issuer_id: str,
    org_id: str,
    form: dict[str, str],
    build: Callable[[], Any],
) -> Any:
    try:
        return build()
    except _Invalid as e:
        return await org_detail(
            request, issuer_id, org_id, operator, errors=e.errors, status_code=422, form=form
        )


# -- groups, invitations, SSO domains ------------------------------------------------------------


@router.post(ORG + "/groups/new")
async def create_group(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    raw = {"name": form.get("group.name", "").strip(), "scopes": lines(form.get("group.scopes"))}
    body = await _guard(
        request, operator, issuer_id, org_id, form, lambda: _body_or_raise(GroupCreate, raw, "group")
    )
    if isinstance(body, Response):
        return body

    async def act(s: AsyncSession, org: Organization) -> str:
        group = await group_service.create_group(s, org, body, operator.principal)
        return f"Group {group.name} created."

    rename = {"name": "group.name", "scopes": "group.scopes"}
    return await _org_action(request, operator, issuer_id, org_id, form, act, rename=rename)


@router.post(ORG + "/invitations/new")
async def create_invitation(
    request: Request, issuer_id: str, org_id: str, operator: Operator = OP
) -> Response:
    form = await check_csrf(request, operator)
    raw: dict[str, Any] = {"email": form.get("email", "").strip()}
    if lines(form.get("invitation.scopes")):
        raw["scopes"] = lines(form.get("invitation.scopes"))
    body = await _guard(
        request,
        operator,
        issuer_id,
        org_id,
        form,
        lambda: _body_or_raise(InvitationCreate, raw, "invitation"),
    )
    if isinstance(body, Response):
        return body

    async def act(s: AsyncSession, org: Organization) -> str:
        inv = await invitation_service.create_invitation(s, org, body, operator.principal,
                                                         get_mailer(request))
        return f"Invitation sent to {inv.email_invited}."

    rename = {"scopes": "invitation.scopes"}
    return await _org_action(request, operator, issuer_id, org_id, form, act, rename=rename)


@router.post(ORG + "/invitations/{invitation_id}/{verb}")
async def invitation_action(
    request: Request, issuer_id: str, org_id: str, invitation_id: str, verb: str, operator: Operator = OP
) -> Response:
    form = await check_csrf(request, operator)
    if verb not in ("resend", "revoke"):
        raise ConsoleRefusal(404, "Not found", "There is no such action.", operator=operator)

    async def act(s: AsyncSession, org: Organization) -> str:
        inv = await invitation_service.get_invitation(s, org, invitation_id, for_update=True)
        if verb == "resend":
            await invitation_service.resend_invitation(s, org, inv, operator.principal, get_mailer(request))
            return f"Invitation to {inv.email_invited} sent again."
        await invitation_service.revoke_invitation(s, inv, operator.principal)
        return f"Invitation to {inv.email_invited} revoked."

    return await _org_action(request, operator, issuer_id, org_id, form, act)


@router.post(ORG + "/domains/new")
async def add_domain(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)

    async def act(s: AsyncSession, org: Organization) -> str:
        domain = sso.normalize_domain(form.get("domain", ""))
        row = await sso.add_domain(s, org, domain, operator.principal)
        return f"Domain {row.domain} added: publish its TXT record, then verify."

    return await _org_action(request, operator, issuer_id, org_id, form, act)


@router.post(ORG + "/domains/{domain}/{verb}")
async def domain_action(
    request: Request, issuer_id: str, org_id: str, domain: str, verb: str, operator: Operator = OP
) -> Response:
    form = await check_csrf(request, operator)
    if verb not in ("verify", "remove"):
        raise ConsoleRefusal(404, "Not found", "There is no such action.", operator=operator)

    async def act(s: AsyncSession, org: Organization) -> str:
        row = await sso.get_domain(s, org, domain, for_update=True)
        if verb == "remove":
            await sso.remove_domain(s, org, row, operator.principal)
            return f"Domain {domain} removed."
        resolver = getattr(request.app.state, "txt_resolver", None) or resolver_for(
        request.app.state.settings.dns_nameservers)
        result = await sso.verify_domain(s, org, row, resolver, operator.principal)
        return (
            f"Domain {domain} verified."
            if result.get("verified")
            else f"Domain {domain}: TXT record not found yet."
        )

    return await _org_action(request, operator, issuer_id, org_id, form, act)


# -- enterprise SSO (the organization's OIDC connection) -----------------------------------------

SSO_TEXT = ("issuer", "client_id", "client_secret")


def _sso_raw(form: dict[str, str]) -> dict[str, Any]:
    """The API's PATCH body from the SSO form (inputs named as the API's fields, `sso.connection.…`).
    An empty secret is left out, so the stored one is kept, as a PATCH without it does."""
    connection: dict[str, Any] = {"type": form.get("sso.connection.type", "oidc")}
    for key in SSO_TEXT:
        value = form.get(f"sso.connection.{key}", "").strip()
        if value:
            connection[key] = value
    if lines(form.get("sso.connection.scopes")):
        connection["scopes"] = lines(form.get("sso.connection.scopes"))
    sso: dict[str, Any] = {"enabled": form.get("sso.enabled") == "true",
                           "sso_only": form.get("sso.sso_only") == "true"}
    if connection != {"type": "oidc"}:
        sso["connection"] = connection
    return {"sso": sso}


async def _update_sso(request: Request, s: AsyncSession, org: Organization, body: OrganizationUpdate,
                      operator: Operator) -> None:
    await org_service.update_organization(s, org, body, operator.principal, **sso_options(request))


@router.post(ORG + "/sso")
async def configure_sso(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    raw = _sso_raw(form)
    body = await _guard(
        request, operator, issuer_id, org_id, form, lambda: _body_or_raise(OrganizationUpdate, raw)
    )
    if isinstance(body, Response):
        return body

    async def act(s: AsyncSession, org: Organization) -> str:
        await _update_sso(request, s, org, body, operator)
        return "Enterprise SSO " + ("enabled." if org.sso.get("enabled") else "saved (disabled).")

    return await _org_action(request, operator, issuer_id, org_id, form, act, lock=True)


@router.post(ORG + "/sso/disable")
async def disable_sso(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)

    async def act(s: AsyncSession, org: Organization) -> str:
        current = dict(org.sso or {})
        if current.get("enabled") is not True:
            raise ValidationFailed("Enterprise SSO is already disabled", field="sso.enabled")
        # The connection is kept (without `enabled`, nobody is sent to it), ready to be enabled again.
        body = OrganizationUpdate.model_validate({"sso": {**current, "enabled": False, "sso_only": False}})
        await _update_sso(request, s, org, body, operator)
        return "Enterprise SSO disabled."

    return await _org_action(request, operator, issuer_id, org_id, form, act, lock=True)


# -- user sessions and trusted devices ------------------------------------------------------------


def _user_url(issuer_id: str, user_id: str, flash: str) -> str:
    return f"/console/issuers/{issuer_id}/users/{user_id}?" + urlencode({"flash": flash})


@router.post("/console/issuers/{issuer_id}/users/{user_id}/sessions/{session_id}/revoke")
async def revoke_session(
    request: Request, issuer_id: str, user_id: str, session_id: str, operator: Operator = OP
) -> Response:
    await check_csrf(request, operator)
    require(operator, "issuers.sessions", "write")

    async def act(s: AsyncSession) -> str:
        user = await user_service.get_user_in_issuer(s, operator.account_id, issuer_id, user_id)
        row = await session_service.get_session(s, operator.account_id, issuer_id, session_id)
        if row.user_id != user.id:
            raise NotFound("session")
        if row.status == "revoked":
            raise ValidationFailed("The session is already revoked", field="status")
        await session_service.end_session(
            s,
            row,
            status="revoked",
            reason="revoked in the console",
            event="session.revoked",
            auth=operator.principal,
        )
        return f"Session {session_id} revoked."

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else result
    return redirect(request, _user_url(issuer_id, user_id, flash or ""), operator)


@router.post("/console/issuers/{issuer_id}/users/{user_id}/devices/{device_id}/revoke")
async def revoke_device(
    request: Request, issuer_id: str, user_id: str, device_id: str, operator: Operator = OP
) -> Response:
    await check_csrf(request, operator)
    require(operator, "issuers.users", "write")

    async def act(s: AsyncSession) -> str:
        user = await user_service.get_user_in_issuer(s, operator.account_id, issuer_id, user_id)
        await device_service.revoke_device(s, user, device_id, operator.principal)
        return "Trusted device revoked."

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else result
    return redirect(request, _user_url(issuer_id, user_id, flash or ""), operator)


# -- agents ---------------------------------------------------------------------------------------

AGENT_FIELDS = [
    {"name": "name", "label": "Name", "required": True},
    {"name": "model", "label": "Model", "help": "e.g. the LLM it runs on (optional)"},
    {"name": "scopes", "label": "Scopes", "type": "textarea", "help": "One resource:action scope per line"},
]


def _agent_form(issuer_id: str) -> dict[str, Any]:
    return {"title": "New agent", "action": f"/console/issuers/{issuer_id}/agents/new",
            "fields": AGENT_FIELDS, "cancel": f"/console/agents?issuer={issuer_id}"}


@router.get("/console/issuers/{issuer_id}/agents/new")
async def new_agent(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    return await new_in_issuer_page(request, operator, issuer_id, "issuers.agents", _agent_form(issuer_id))


@router.post("/console/issuers/{issuer_id}/agents/new")
async def create_agent(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.agents", "write")
    raw: dict[str, Any] = {"name": form.get("name", "").strip(), "scopes": lines(form.get("scopes"))}
    if form.get("model", "").strip():
        raw["model"] = form["model"].strip()
    body = parse_body(AgentCreate, raw)

    async def act(s: AsyncSession) -> Any:
        await get_issuer_in_account(s, operator.account_id, issuer_id)
        return await agent_service.create_agent(
            s, account_id=operator.account_id, issuer_id=issuer_id, body=body, auth=operator.principal
        )

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return form_page(request, operator, _agent_form(issuer_id), result, form)
    return redirect(request, f"/console/issuers/{issuer_id}/agents/{result.id}", operator)


@router.post("/console/issuers/{issuer_id}/agents/{agent_id}/verifiers/new")
async def add_agent_verifier(
    request: Request, issuer_id: str, agent_id: str, operator: Operator = OP
) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.agents", "write")
    raw: dict[str, Any] = {"type": "secret"}
    if form.get("name", "").strip():
        raw["name"] = form["name"].strip()
    body = parse_body(VerifierCreate, raw)

    async def act(s: AsyncSession) -> Any:
        agent = await agent_service.get_agent(
            s, account_id=operator.account_id, issuer_id=issuer_id, agent_id=agent_id, for_update=True
        )
        return await agent_service.create_verifier(s, agent, body, operator.principal)

    result = body if isinstance(body, FormErrors) else await run(request, act)
    back = f"/console/issuers/{issuer_id}/agents/{agent_id}"
    if isinstance(result, FormErrors):
        return redirect(request, back + "?" + urlencode({"flash": result.message or ""}), operator)
    verifier, secret = result
    return render(
        request,
        "secret.html",
        operator=operator,
        title="Agent verifier added",
        what="Added the secret verifier",
        object_id=verifier.id,
        secret=secret,
        next_url=back,
    )


@router.post("/console/issuers/{issuer_id}/agents/{agent_id}/verifiers/{verifier_id}/remove")
async def remove_agent_verifier(
    request: Request, issuer_id: str, agent_id: str, verifier_id: str, operator: Operator = OP
) -> Response:
    await check_csrf(request, operator)
    require(operator, "issuers.agents", "write")

    async def act(s: AsyncSession) -> str:
        agent = await agent_service.get_agent(
            s, account_id=operator.account_id, issuer_id=issuer_id, agent_id=agent_id, for_update=True
        )
        row = await agent_service.get_verifier(s, agent, verifier_id)
        await agent_service.delete_verifier(s, agent, row, operator.principal)
        return "Verifier removed."

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else result
    return redirect(
        request,
        f"/console/issuers/{issuer_id}/agents/{agent_id}?" + urlencode({"flash": flash or ""}),
        operator,
    )


# -- webhooks -------------------------------------------------------------------------------------

WEBHOOK_FIELDS = [
    {"name": "name", "label": "Name", "required": True},
    {"name": "url", "label": "Endpoint URL", "type": "url", "required": True},
    {
        "name": "events",
        "label": "Event types",
        "type": "textarea",
        "rows": 5,
        "help": "One per line, e.g. user.created (" + str(len(WEBHOOK_EVENT_TYPES)) + " deliverable types)",
    },
]


WEBHOOK_FORM = {"title": "New webhook", "action": "/console/webhooks/new", "fields": WEBHOOK_FIELDS,
                "cancel": "/console/webhooks"}


@router.get("/console/webhooks/new")
async def new_webhook(request: Request, operator: Operator = OP) -> Response:
    require(operator, "webhooks", "write")
    return form_page(request, operator, WEBHOOK_FORM)


@router.post("/console/webhooks/new")
async def create_webhook(request: Request, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "webhooks", "write")
    body = parse_body(
        WebhookCreate,
        {
            "name": form.get("name", "").strip(),
            "url": form.get("url", "").strip(),
            "auth": {"type": "signature"},
            "events": lines(form.get("events")),
        },
    )
    settings = request.app.state.settings

    async def act(s: AsyncSession) -> Any:
        return await webhook_service.create_webhook(
            s,
            operator.account_id,
            body,
            operator.principal,
            server_key=request.app.state.secret_key,
            allow_private=settings.webhooks_allow_private,
        )

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return form_page(request, operator, WEBHOOK_FORM, result, form)
    webhook, secret = result
    return render(
        request,
        "secret.html",
        operator=operator,
        title="Webhook created",
        what="Created the webhook (its signing secret below)",
        object_id=webhook.id,
        secret=secret,
        next_url=f"/console/webhooks/{webhook.id}",
    )
