"""The console's pages: each list, form and action calls the same service as the admin API, with the
API's own body models for validation, inside one unit of work, as the signed-in operator's key."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_key import service as key_service
from app.api_key.schemas import CreateApiKey, RotateApiKey, StatusChange, display_status
from app.auth_method import service as method_service
from app.auth_method.schemas import AuthMethodUpdate
from app.auth_method.service import list_methods
from app.client import service as client_service
from app.client.schemas import ClientCreate
from app.console.charts import overview_charts
from app.console.queries import org_extras, user_extras
from app.console.web import (
    ConsoleRefusal,
    FormErrors,
    Operator,
    check_csrf,
    current_operator,
    fmt_time,
    form_page,
    lines,
    new_in_issuer_page,
    parse_body,
    read,
    redirect,
    render,
    require,
    run,
)
from app.core.errors import ApiError, NotFound
from app.core.pagination import PageParams, decode_cursor
from app.identity.providers import redirect_uri
from app.issuer import service as issuer_service
from app.issuer.dependencies import get_issuer_in_account
from app.issuer.schemas import IssuerCreate, IssuerUpdate
from app.membership import service as membership_service
from app.membership.schemas import MemberCreate
from app.models.issuer import Issuer
from app.models.signing_key import SigningKey
from app.organization import service as org_service
from app.organization.schemas import OrganizationCreate, OrganizationUpdate, sso_view
from app.signing_key.service import rotate_signing_keys
from app.user import service as user_service
from app.user.schemas import UserCreate, UserUpdate

router = APIRouter(include_in_schema=False)
OP = Depends(current_operator)
PAGE = 25


def page_params(request: Request) -> PageParams:
    cursor = request.query_params.get("cursor")
    try:
        return PageParams(limit=PAGE, after_id=decode_cursor(cursor) if cursor else None)
    except ApiError as e:
        raise ConsoleRefusal(400, "Bad page link", e.description) from e


def next_url(request: Request, cursor: str | None) -> str | None:
    if not cursor:
        return None
    query = dict(request.query_params)
    query["cursor"] = cursor
    return f"{request.url.path}?{urlencode(query)}"


def q(request: Request, name: str, limit: int = 200) -> str | None:
    value = (request.query_params.get(name) or "").strip()
    return value[:limit] or None


def issuer_url(issuer_id: str) -> str:
    return f"/console/issuers/{issuer_id}"


def org_url(issuer_id: str, org_id: str) -> str:
    return f"/console/issuers/{issuer_id}/organizations/{org_id}"


async def issuer_options(
    session: AsyncSession, account_id: str, only: tuple[str, ...] | None = None
) -> list[tuple[str, str]]:
    """The account's issuers to choose from (`only`: a delegated admin's issuers)."""
    stmt = select(Issuer).where(Issuer.account_id == account_id, Issuer.status != "deleted")
    if only is not None:
        stmt = stmt.where(Issuer.id.in_(only))
    rows = (await session.scalars(stmt.order_by(Issuer.id.desc()).limit(200))).all()
    return [(i.id, f"{i.name} ({i.id})") for i in rows]


async def chosen_issuer(
    request: Request, operator: Operator, session: AsyncSession
) -> tuple[str | None, list[tuple[str, str]]]:
    """The `issuer` query parameter (checked to be the account's), else the newest issuer."""
    options = await issuer_options(session, operator.account_id, operator.issuer_ids)
    wanted = q(request, "issuer", 64)
    if wanted:
        if operator.issuer_ids is not None and wanted not in operator.issuer_ids:
            raise NotFound("issuer")
        await get_issuer_in_account(session, operator.account_id, wanted)
        return wanted, options
    return (options[0][0] if options else None), options


# -- overview -------------------------------------------------------------------------------------


@router.get("/console")
async def overview(request: Request, operator: Operator = OP) -> Response:

    charts = await read(request, lambda s: overview_charts(s, operator)) if operator.can("events") else []
    return render(request, "overview.html", operator=operator, title="Overview", charts=charts)


# -- issuers --------------------------------------------------------------------------------------


@router.get("/console/issuers")
async def issuers(request: Request, operator: Operator = OP) -> Response:
    require(operator, "issuers", "read")
    params = page_params(request)

    async def load(s: AsyncSession) -> Any:
        return await issuer_service.list_issuers(
            s,
            account_id=operator.account_id,
            params=params,
            q=q(request, "q"),
            status=q(request, "status", 32),
            access_mode=None,
            readiness=None,
            only=operator.issuer_ids,
        )

    rows, _, cursor = await read(request, load)
    return render(
        request,
        "list.html",
        operator=operator,
        title="Issuers",
        new_url="/console/issuers/new" if operator.can_create_issuers else None,
        new_label="New issuer",
        columns=[
            ("Name", "name"),
            ("ID", "id"),
            ("Status", "status"),
            ("Active clients", "clients"),
            ("Created", "created"),
        ],
        rows=[
            {
                "href": issuer_url(i.id),
                "name": i.name,
                "id": i.id,
                "status": i.status,
                "clients": n,
                "created": _t(i.created_at),
            }
            for i, n, _m in rows
        ],
        filters=[
            {"name": "q", "label": "Search", "value": q(request, "q") or ""},
            {
                "name": "status",
                "label": "Status",
                "type": "select",
                "value": q(request, "status") or "",
                "options": [("", "Any"), ("active", "Active"), ("inactive", "Inactive")],
            },
        ],
        next_url=next_url(request, cursor),
        empty="No issuers yet.",
    )


def _t(ms: int | None) -> str:

    return fmt_time(ms)


ISSUER_FIELDS = [
    {"name": "name", "label": "Name", "required": True},
    {"name": "description", "label": "Description", "type": "textarea"},
    {
        "name": "available_scopes",
        "label": "Available scopes",
        "type": "textarea",
        "help": "One resource:action scope per line, e.g. invoices:read",
    },
]


ISSUER_FORM = {"title": "New issuer", "action": "/console/issuers/new", "fields": ISSUER_FIELDS,
               "cancel": "/console/issuers"}


@router.get("/console/issuers/new")
async def new_issuer(request: Request, operator: Operator = OP) -> Response:
    require(operator, "issuers", "write")
    return form_page(request, operator, ISSUER_FORM)


def _issuer_body(form: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": form.get("name", "").strip()}
    if form.get("description", "").strip():
        body["description"] = form["description"].strip()
    if lines(form.get("available_scopes")):
        body["available_scopes"] = lines(form.get("available_scopes"))
    return body


@router.post("/console/issuers/new")
async def create_issuer(request: Request, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers", "write")
    body = parse_body(IssuerCreate, _issuer_body(form))
    if not isinstance(body, FormErrors):
        valid = body
        body = await run(
            request,
            lambda s: issuer_service.create_issuer(
                s,
                account_id=operator.account_id,
                body=valid,
                server_key=request.app.state.secret_key,
                auth=operator.principal,
            ),
        )
    if isinstance(body, FormErrors):
        return form_page(request, operator, ISSUER_FORM, body, form)
    return redirect(request, issuer_url(body.id) + "?created=1", operator)


@router.get("/console/issuers/{issuer_id}")
async def issuer_detail(
    request: Request,
    issuer_id: str,
    operator: Operator = OP,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    require(operator, "issuers", "read")

    async def load(s: AsyncSession) -> Any:
        issuer = await get_issuer_in_account(s, operator.account_id, issuer_id)
        keys = (
            await s.scalars(
                select(SigningKey)
                .where(SigningKey.issuer_id == issuer.id, SigningKey.account_id == operator.account_id)
                .order_by(SigningKey.created_at.desc())
                .limit(20)
            )
        ).all()
        clients: list[Any] = []
        if operator.can("issuers.clients"):
            clients, _, _ = await client_service.list_clients(
                s,
                issuer,
                PageParams(limit=50, after_id=None),
                q=None,
                name=None,
                status=None,
                application_type=None,
                readiness=None,
            )

        methods = await list_methods(s, account_id=operator.account_id, issuer_id=issuer.id)
        return issuer, keys, clients, methods

    issuer, keys, clients, methods = await read(request, load)
    public = request.app.state.settings.resolved_public_url()
    return render(
        request,
        "issuer.html",
        operator=operator,
        title=f"Issuer {issuer.name}",
        issuer=issuer,
        keys=keys,
        clients=clients,
        methods=methods,
        errors=errors,
        status_code=status_code,
        discovery=f"{public}/{issuer.id}/.well-known/openid-configuration",
        flash="Issuer created." if request.query_params.get("created") else request.query_params.get("flash"),
    )


@router.post("/console/issuers/{issuer_id}/settings")
async def update_issuer(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers", "write")
    branding = {
        k.split(".", 1)[1]: v.strip() for k, v in form.items() if k.startswith("branding.") and v.strip()
    }

    async def act(s: AsyncSession) -> Any:
        issuer = await get_issuer_in_account(s, operator.account_id, issuer_id)
        settings = dict(issuer.settings or {})
        settings.setdefault("access", {})
        if branding or "branding.title" in form:
            settings["branding"] = branding
        raw = {**_issuer_body(form), "settings": settings}
        if "available_scopes" in form:
            raw["available_scopes"] = lines(form.get("available_scopes"))
        body = parse_body(IssuerUpdate, raw)
        if isinstance(body, FormErrors):
            raise _FormFailure(body)
        issuer = await issuer_service.update_issuer(s, issuer, body, operator.principal)
        return issuer

    result = await _run_form(request, act)
    if isinstance(result, FormErrors):
        return await _issuer_with_errors(request, operator, issuer_id, result)
    return redirect(request, issuer_url(issuer_id) + "?flash=Settings+saved.", operator)


class _FormFailure(Exception):
    def __init__(self, errors: FormErrors) -> None:
        self.errors = errors


async def _run_form(request: Request, act: Any) -> Any:
    try:
        return await run(request, act)
    except _FormFailure as f:
        return f.errors


async def _issuer_with_errors(
    request: Request, operator: Operator, issuer_id: str, errors: FormErrors
) -> Response:
    return await issuer_detail(request, issuer_id, operator, errors=errors, status_code=422)


@router.post("/console/issuers/{issuer_id}/auth-methods/{method_id}/{verb}")
async def toggle_auth_method(
    request: Request, issuer_id: str, method_id: str, verb: str, operator: Operator = OP
) -> Response:

    await check_csrf(request, operator)
    require(operator, "issuers", "write")
    if verb not in ("enable", "disable"):
        raise ConsoleRefusal(404, "Not found", "There is no such action.", operator=operator)

    async def act(s: AsyncSession) -> Any:
        await get_issuer_in_account(s, operator.account_id, issuer_id)
        m = await method_service.get_method(
            s, account_id=operator.account_id, issuer_id=issuer_id, method_id=method_id, for_update=True
        )
        body = AuthMethodUpdate(enabled=verb == "enable")
        return await method_service.update_method(
            s, m, body, operator.principal, request.app.state.secret_key,
            allow_private=request.app.state.settings.webhooks_allow_private)

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else f"Sign-in method {result.type} {verb}d."
    return redirect(request, issuer_url(issuer_id) + "?" + urlencode({"flash": flash or ""}), operator)


@router.post("/console/issuers/{issuer_id}/signing-keys/rotate")
async def rotate_keys(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    await check_csrf(request, operator)
    require(operator, "issuers", "write")

    async def act(s: AsyncSession) -> Any:
        issuer = await get_issuer_in_account(s, operator.account_id, issuer_id)
        keys = await rotate_signing_keys(
            s, issuer, request.app.state.secret_key, operator.principal
        )
        return keys

    result = await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else "Signing keys rotated."
    return redirect(request, issuer_url(issuer_id) + "?" + urlencode({"flash": flash}), operator)


# -- clients --------------------------------------------------------------------------------------

CLIENT_FIELDS = [
    {"name": "name", "label": "Name", "required": True},
    {
        "name": "confidential",
        "label": "Confidential (has a secret)",
        "type": "select",
        "options": [("true", "Yes"), ("false", "No (public client)")],
        "value": "true",
    },
    {
        "name": "settings.openid.application_type",
        "label": "Application type",
        "type": "select",
        "options": [("web", "Web"), ("native", "Native")],
        "value": "web",
    },
    {
        "name": "settings.openid.grant_types",
        "label": "Grant types",
        "type": "textarea",
        "value": "authorization_code\nrefresh_token",
        "help": "One per line: authorization_code, refresh_token, client_credentials",
    },
    {
        "name": "settings.openid.redirect_uris",
        "label": "Redirect URIs",
        "type": "textarea",
        "help": "One absolute URI per line",
    },
    {"name": "settings.scopes", "label": "Scopes", "type": "textarea", "value": "openid\nprofile"},
]


def _client_body(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", "").strip(),
        "type": "external",
        "confidential": form.get("confidential", "true") != "false",
        "settings": {
            "protocol": "oidc",
            "scopes": lines(form.get("settings.scopes")),
            "openid": {
                "application_type": form.get("settings.openid.application_type") or "web",
                "grant_types": lines(form.get("settings.openid.grant_types")),
                "redirect_uris": lines(form.get("settings.openid.redirect_uris")),
            },
        },
    }


def _client_form(issuer_id: str) -> dict[str, Any]:
    return {"title": "New client", "action": f"/console/issuers/{issuer_id}/clients/new",
            "fields": CLIENT_FIELDS, "cancel": issuer_url(issuer_id)}


@router.get("/console/issuers/{issuer_id}/clients/new")
async def new_client(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    return await new_in_issuer_page(request, operator, issuer_id, "issuers.clients", _client_form(issuer_id))


@router.post("/console/issuers/{issuer_id}/clients/new")
async def create_client(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.clients", "write")
    body = parse_body(ClientCreate, _client_body(form))

    async def act(s: AsyncSession) -> Any:
        issuer = await get_issuer_in_account(s, operator.account_id, issuer_id)
        return await client_service.create_client(s, issuer, body, operator.principal)  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return form_page(request, operator, _client_form(issuer_id), result, form)
    client, secret = result
    if secret is None:
        return redirect(request, issuer_url(issuer_id) + "?flash=Client+created.", operator)
    return render(
        request,
        "secret.html",
        operator=operator,
        title="Client created",
        what="Created the client",
        object_id=client.id,
        secret=secret,
        next_url=issuer_url(issuer_id),
    )


@router.post("/console/issuers/{issuer_id}/clients/{client_id}/rotate-secret")
async def rotate_client_secret(
    request: Request, issuer_id: str, client_id: str, operator: Operator = OP
) -> Response:
    await check_csrf(request, operator)
    require(operator, "issuers.clients", "write")

    async def act(s: AsyncSession) -> Any:
        issuer = await get_issuer_in_account(s, operator.account_id, issuer_id)
        client = await client_service.get_client(s, issuer, client_id)
        secret = await client_service.rotate_secret(s, client, operator.principal)
        return secret

    result = await run(request, act)
    if isinstance(result, FormErrors):
        return redirect(request, issuer_url(issuer_id) + "?" + urlencode({"flash": result.message}), operator)
    return render(
        request,
        "secret.html",
        operator=operator,
        title="Client secret rotated",
        what="Rotated the secret of the client",
        object_id=client_id,
        secret=result,
        next_url=issuer_url(issuer_id),
    )


# -- organizations --------------------------------------------------------------------------------


@router.get("/console/organizations")
async def organizations(request: Request, operator: Operator = OP) -> Response:
    require(operator, "issuers.organizations", "read")
    params = page_params(request)

    async def load(s: AsyncSession) -> Any:
        issuer_id, options = await chosen_issuer(request, operator, s)
        if issuer_id is None:
            return None, options, [], None
        filters = {"q": q(request, "q")} if q(request, "q") else {}
        rows, _, cursor = await org_service.list_organizations(
            s, account_id=operator.account_id, issuer_id=issuer_id, params=params, filters=filters
        )
        return issuer_id, options, rows, cursor

    issuer_id, options, rows, cursor = await read(request, load)
    return render(
        request,
        "list.html",
        operator=operator,
        title="Organizations",
        new_url=f"/console/issuers/{issuer_id}/organizations/new"
        if issuer_id and operator.can("issuers.organizations", "write")
        else None,
        new_label="New organization",
        columns=[("Name", "name"), ("ID", "id"), ("Status", "status"), ("Created", "created")],
        rows=[
            {
                "href": org_url(o.issuer_id, o.id),
                "name": o.name,
                "id": o.id,
                "status": o.status,
                "created": _t(o.created_at),
            }
            for o in rows
        ],
        filters=_issuer_filter(options, issuer_id)
        + [{"name": "q", "label": "Search", "value": q(request, "q") or ""}],
        next_url=next_url(request, cursor),
        empty="No organizations in this issuer." if issuer_id else "Create an issuer first.",
    )


def _issuer_filter(options: list[tuple[str, str]], chosen: str | None) -> list[dict[str, Any]]:
    return [
        {
            "name": "issuer",
            "label": "Issuer",
            "type": "select",
            "value": chosen or "",
            "options": options or [("", "No issuers")],
        }
    ]


ORG_FIELDS = [
    {"name": "name", "label": "Name", "required": True},
    {"name": "description", "label": "Description", "type": "textarea"},
    {
        "name": "scopes",
        "label": "Scopes the organization may grant",
        "type": "textarea",
        "help": "One resource:action scope per line; empty: any",
    },
]


def _org_form(issuer_id: str) -> dict[str, Any]:
    return {"title": "New organization", "action": f"/console/issuers/{issuer_id}/organizations/new",
            "fields": ORG_FIELDS, "cancel": f"/console/organizations?issuer={issuer_id}"}


@router.get("/console/issuers/{issuer_id}/organizations/new")
async def new_org(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    form = _org_form(issuer_id)
    return await new_in_issuer_page(request, operator, issuer_id, "issuers.organizations", form)


@router.post("/console/issuers/{issuer_id}/organizations/new")
async def create_org(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.organizations", "write")
    raw: dict[str, Any] = {"name": form.get("name", "").strip()}
    if form.get("description", "").strip():
        raw["description"] = form["description"].strip()
    if lines(form.get("scopes")):
        raw["scopes"] = lines(form.get("scopes"))
    body = parse_body(OrganizationCreate, raw)

    async def act(s: AsyncSession) -> Any:
        await get_issuer_in_account(s, operator.account_id, issuer_id)
        return await org_service.create_organization(
            s, account_id=operator.account_id, issuer_id=issuer_id, body=body, auth=operator.principal
        )  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return form_page(request, operator, _org_form(issuer_id), result, form)
    return redirect(request, org_url(issuer_id, result.id) + "?flash=Organization+created.", operator)


async def _org_page_data(s: AsyncSession, operator: Operator, issuer_id: str, org_id: str) -> Any:

    org = await org_service.resolve_organization(s, operator.account_id, issuer_id, org_id)
    members, _, _ = await membership_service.list_memberships(
        s, org, PageParams(limit=100, after_id=None), status=None, scope=None
    )
    keys, _, _ = await key_service.list_keys(
        s,
        account_id=operator.account_id,
        filters=key_service.KeyFilters(),
        params=PageParams(limit=100, after_id=None),
        owner_kind="organization",
        org_id=org.id,
        issuer_id=issuer_id,
    )
    return org, members, keys, await org_extras(s, org)


@router.get("/console/issuers/{issuer_id}/organizations/{org_id}")
async def org_detail(
    request: Request,
    issuer_id: str,
    org_id: str,
    operator: Operator = OP,
    errors: FormErrors | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    require(operator, "issuers.organizations", "read")
    org, members, keys, extras = await read(request, lambda s: _org_page_data(s, operator, issuer_id, org_id))
    public = request.app.state.settings.resolved_public_url()
    return render(
        request,
        "organization.html",
        operator=operator,
        title=f"Organization {org.name}",
        org=org,
        members=members,
        keys=keys,
        extras=extras,
        sso=sso_view(org, public),  # the API's view: the redirect URI, whether a secret is set
        sso_redirect_uri=redirect_uri(public, org.issuer_id, org.id),
        display_status=display_status,
        errors=errors,
        status_code=status_code,
        form=form or {},
        flash=request.query_params.get("flash"),
    )


@router.post("/console/issuers/{issuer_id}/organizations/{org_id}/status")
async def org_status(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.organizations", "write")
    status = form.get("status", "")
    body = parse_body(OrganizationUpdate, {"status": status})

    async def act(s: AsyncSession) -> Any:
        org = await org_service.resolve_organization(
            s, operator.account_id, issuer_id, org_id, for_update=True
        )
        return await org_service.update_organization(s, org, body, operator.principal)  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else f"Organization {result.status}."
    return redirect(request, org_url(issuer_id, org_id) + "?" + urlencode({"flash": flash}), operator)


@router.post("/console/issuers/{issuer_id}/organizations/{org_id}/members/new")
async def add_member(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.organizations", "write")
    raw: dict[str, Any] = {"member_id": form.get("member_id", "").strip()}
    if lines(form.get("scopes")):
        raw["scopes"] = lines(form.get("scopes"))
    body = parse_body(MemberCreate, raw)

    async def act(s: AsyncSession) -> Any:
        org = await org_service.resolve_organization(s, operator.account_id, issuer_id, org_id)
        return await membership_service.create_membership(s, org, body, operator.principal)  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return await org_detail(
            request, issuer_id, org_id, operator, errors=result, status_code=422, form=form
        )
    return redirect(request, org_url(issuer_id, org_id) + "?flash=Member+added.", operator)


@router.post("/console/issuers/{issuer_id}/organizations/{org_id}/api-keys/new")
async def create_org_key(request: Request, issuer_id: str, org_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.organizations", "write")
    body = parse_body(
        CreateApiKey,
        {
            "type": "api_key",
            "name": form.get("name", "").strip(),
            "restrictions": {"scopes": lines(form.get("restrictions.scopes"))},
        },
    )

    async def act(s: AsyncSession) -> Any:
        org = await org_service.resolve_organization(s, operator.account_id, issuer_id, org_id)
        return await key_service.create_org_key(s, org=org, body=body, auth=operator.principal)  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return await org_detail(
            request, issuer_id, org_id, operator, errors=result, status_code=422, form=form
        )
    key, secret = result
    return render(
        request,
        "secret.html",
        operator=operator,
        title="API key created",
        what="Created the organization API key",
        object_id=key.id,
        secret=secret,
        next_url=org_url(issuer_id, org_id),
    )


@router.post("/console/issuers/{issuer_id}/organizations/{org_id}/api-keys/{key_id}/{verb}")
async def org_key_action(
    request: Request, issuer_id: str, org_id: str, key_id: str, verb: str, operator: Operator = OP
) -> Response:
    await check_csrf(request, operator)
    require(operator, "issuers.organizations", "write")
    if verb not in ("block", "unblock", "revoke", "rotate"):
        raise ConsoleRefusal(404, "Not found", "There is no such action.", operator=operator)

    async def act(s: AsyncSession) -> Any:
        await org_service.resolve_organization(s, operator.account_id, issuer_id, org_id)
        key = await key_service.get_key(s, account_id=operator.account_id, key_id=key_id, for_update=True)
        if key.owner_kind != "organization" or key.org_id != org_id:
            raise NotFound("API key")
        if verb == "block":
            return await key_service.block_key(s, key, StatusChange(), operator.principal), None
        if verb == "unblock":
            return await key_service.unblock_key(s, key, operator.principal), None
        if verb == "revoke":
            return await key_service.revoke_key(s, key, StatusChange(), operator.principal), None
        return await key_service.rotate_key(s, key, RotateApiKey(), operator.principal)

    result = await run(request, act)
    if isinstance(result, FormErrors):
        return redirect(
            request, org_url(issuer_id, org_id) + "?" + urlencode({"flash": result.message}), operator
        )
    key, secret = result
    if secret:
        return render(
            request,
            "secret.html",
            operator=operator,
            title="API key rotated",
            what="Rotated the API key",
            object_id=key.id,
            secret=secret,
            next_url=org_url(issuer_id, org_id),
        )
    return redirect(
        request, org_url(issuer_id, org_id) + "?" + urlencode({"flash": f"Key {key.id}: {verb}ed."}), operator
    )


# -- users ----------------------------------------------------------------------------------------

USER_FIELDS = [
    {"name": "username", "label": "Email", "type": "email", "required": True},
    {"name": "profile.first_name", "label": "First name"},
    {"name": "profile.last_name", "label": "Last name"},
]


@router.get("/console/users")
async def users(request: Request, operator: Operator = OP) -> Response:
    require(operator, "issuers.users", "read")
    params = page_params(request)

    async def load(s: AsyncSession) -> Any:
        issuer_id, options = await chosen_issuer(request, operator, s)
        if issuer_id is None:
            return None, options, [], None
        rows, _, cursor = await user_service.list_users(
            s,
            account_id=operator.account_id,
            issuer_id=issuer_id,
            params=params,
            status=q(request, "status", 32),
        )
        return issuer_id, options, rows, cursor

    issuer_id, options, rows, cursor = await read(request, load)
    return render(
        request,
        "list.html",
        operator=operator,
        title="Users",
        new_url=f"/console/issuers/{issuer_id}/users/new"
        if issuer_id and operator.can("issuers.users", "write")
        else None,
        new_label="New user",
        columns=[("Username", "username"), ("ID", "id"), ("Status", "status"), ("Created", "created")],
        rows=[
            {
                "href": f"/console/issuers/{u.issuer_id}/users/{u.id}",
                "username": u.username,
                "id": u.id,
                "status": u.status,
                "created": _t(u.created_at),
            }
            for u in rows
        ],
        filters=_issuer_filter(options, issuer_id)
        + [
            {
                "name": "status",
                "label": "Status",
                "type": "select",
                "value": q(request, "status") or "",
                "options": [("", "Any"), ("active", "Active"), ("blocked", "Blocked")],
            }
        ],
        next_url=next_url(request, cursor),
        empty="No users in this issuer." if issuer_id else "Create an issuer first.",
    )


def _user_form(issuer_id: str) -> dict[str, Any]:
    return {"title": "New user", "action": f"/console/issuers/{issuer_id}/users/new", "fields": USER_FIELDS,
            "cancel": f"/console/users?issuer={issuer_id}"}


@router.get("/console/issuers/{issuer_id}/users/new")
async def new_user(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    return await new_in_issuer_page(request, operator, issuer_id, "issuers.users", _user_form(issuer_id))


@router.post("/console/issuers/{issuer_id}/users/new")
async def create_user(request: Request, issuer_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.users", "write")
    profile = {
        k: form[f"profile.{k}"].strip()
        for k in ("first_name", "last_name")
        if form.get(f"profile.{k}", "").strip()
    }
    body = parse_body(
        UserCreate,
        {"username_type": "email", "username": form.get("username", "").strip(), "profile": profile},
    )

    async def act(s: AsyncSession) -> Any:
        await get_issuer_in_account(s, operator.account_id, issuer_id)
        return await user_service.create_user(
            s, account_id=operator.account_id, issuer_id=issuer_id, body=body, auth=operator.principal
        )  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    if isinstance(result, FormErrors):
        return form_page(request, operator, _user_form(issuer_id), result, form)
    return redirect(request, f"/console/issuers/{issuer_id}/users/{result.id}?flash=User+created.", operator)


@router.get("/console/issuers/{issuer_id}/users/{user_id}")
async def user_detail(request: Request, issuer_id: str, user_id: str, operator: Operator = OP) -> Response:
    require(operator, "issuers.users", "read")

    async def load(s: AsyncSession) -> Any:

        user = await user_service.get_user_in_issuer(s, operator.account_id, issuer_id, user_id)
        return user, await user_extras(s, user)

    user, extras = await read(request, load)
    return render(
        request,
        "user.html",
        operator=operator,
        title=f"User {user.username}",
        user=user,
        extras=extras,
        flash=request.query_params.get("flash"),
    )


@router.post("/console/issuers/{issuer_id}/users/{user_id}/status")
async def user_status(request: Request, issuer_id: str, user_id: str, operator: Operator = OP) -> Response:
    form = await check_csrf(request, operator)
    require(operator, "issuers.users", "write")
    body = parse_body(UserUpdate, {"status": form.get("status", "")})

    async def act(s: AsyncSession) -> Any:
        user = await user_service.get_user_in_issuer(s, operator.account_id, issuer_id, user_id)
        return await user_service.update_user(s, user, body, operator.principal)  # type: ignore[arg-type]

    result = body if isinstance(body, FormErrors) else await run(request, act)
    flash = result.message if isinstance(result, FormErrors) else f"User {result.status}."
    return redirect(
        request, f"/console/issuers/{issuer_id}/users/{user_id}?" + urlencode({"flash": flash}), operator
    )
