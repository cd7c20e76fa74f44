"""The hosted side of federation: start a sign-in at an upstream (an issuer's `oidc`, `google`,
`microsoft` or `github` auth method, or an organization's OIDC connection), come back to its
callback, and home-realm discovery by email domain.

- Start: state, nonce and a PKCE verifier are kept in a pending sign-in (PostgreSQL, any replica),
  found again by this browser's cookie; the browser goes to the upstream.
- Callback: the state must match (constant time); an upstream `error` is shown as a clear page;
  the code is redeemed with the verifier and the ID token checked (app/federation/client.py).
- Then the identity rules (app/identity/service.py): a known identity signs its user in; an
  organization's connection links or provisions only emails on its verified domains; a social
  method links by email only with `trust_verified_email` and `email_verified`, otherwise the user
  first proves the existing account with its own sign-in (the link waits in this browser).
- Sessions carry `amr: ["fed"]`; `sso_only` organizations refuse every other way in.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import constant_time_equals, decrypt, generate_secret
from app.core.ids import now_ms
from app.events.service import record
from app.federation import client
from app.hosted import flow
from app.hosted.pages import (
    REDIRECT_HEADERS,
    _not_found,
    after_first_factor,
    client_ip,
    link_cookie_name,
    page_context,
    sso_refusal,
)
from app.identity import service as identities
from app.identity.providers import RUNNABLE_TYPES, Provider, provider_of, redirect_uri
from app.models.auth_method import IssuerAuthMethod
from app.models.organization import Organization
from app.oidc.pages import (
    clear_cookie,
    csrf_ok,
    message_page,
    open_return,
    render,
    same_origin,
    set_cookie,
)
from app.oidc.runtime import key_set
from app.signing_key.cache import KeySet

router = APIRouter()
STAGE = "federated"
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def federation_cookie_name(issuer_id: str) -> str:
    return f"authpi_federation_{issuer_id}"


class Source:
    """An upstream the issuer's users may sign in through, with what running it needs."""

    def __init__(self, type: str, id: str, name: str, provider: Provider, secret_encrypted: str | None,
                 org: Organization | None = None) -> None:
        self.type, self.id, self.name, self.provider = type, id, name, provider
        self.secret_encrypted, self.org = secret_encrypted, org


async def load_source(session: AsyncSession, keys: KeySet, source_id: str) -> Source | None:
    """An enabled upstream auth method of this issuer, or an organization of it with SSO on."""
    if source_id.startswith("am_"):
        m = await session.scalar(select(IssuerAuthMethod).where(
            IssuerAuthMethod.id == source_id, IssuerAuthMethod.account_id == keys.account_id,
            IssuerAuthMethod.issuer_id == keys.issuer_id))
        if m is None or not m.enabled or m.type not in RUNNABLE_TYPES:
            return None
        return Source(identities.METHOD, m.id, m.name or m.type.capitalize(),
                      provider_of(m.type, m.settings or {}), m.secret_encrypted)
    if source_id.startswith("org_"):
        org = await identities.sso_organization(session, account_id=keys.account_id, issuer_id=keys.issuer_id,
                                                org_id=source_id)
        if org is None:
            return None
        settings = {k: v for k, v in (org.sso.get("connection") or {}).items() if k != "type"}
        return Source(identities.ORGANIZATION, org.id, org.name or org.id, provider_of("oidc", settings),
                      org.sso_client_secret_encrypted, org)
    return None


def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303, headers=dict(REDIRECT_HEADERS))


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.webhooks_allow_private)


def _public(request: Request) -> str:
    return str(request.app.state.settings.resolved_public_url())


async def _failed(session: AsyncSession, keys: KeySet, source_id: str, ip: str, reason: str,
                  detail: str | None = None, user_id: str | None = None) -> None:
    data: dict[str, Any] = {"method": "federated", "source_id": source_id, "reason": reason, "ip": ip}
    if detail:
        data["detail"] = detail[:300]
    await record(session, type="user.verification.failed", account_id=keys.account_id,
                 issuer_id=keys.issuer_id, user_id=user_id,
                 subject=({"type": "user", "id": user_id} if user_id
                          else {"type": "issuer", "id": keys.issuer_id}),
                 data=data, auth=flow.event_auth(None, keys.issuer_id, ip))


@router.get("/{issuer_id}/login/federated/{source_id}", include_in_schema=False)
async def start(issuer_id: str, source_id: str, request: Request) -> Response:
    """Send the browser to the upstream with state, nonce and a PKCE challenge."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    return_to = request.query_params.get("return", "")
    server_key = request.app.state.secret_key
    params = open_return(server_key, issuer_id, return_to)
    async with request.app.state.db.unit_of_work() as session:
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if params is None:
            return message_page(t("sign_in_error"), t("link_invalid"), **ctx)
        source = await load_source(session, keys, source_id)
        if source is None:
            return message_page(t("not_found"), t("link_invalid"), status_code=404, **ctx)
        try:
            where = await client.endpoints(source.provider, allow_private=_allow_private(request))
        except client.UpstreamError as exc:
            await _failed(session, keys, source.id, client_ip(request), "upstream_unavailable", str(exc))
            return message_page(t("sign_in_error"), t("upstream_failed"), status_code=502, **ctx)
        state, nonce, verifier = generate_secret(32), generate_secret(32), generate_secret(48)
        _, cookie = await flow.create_pending(
            session, server_key, account_id=keys.account_id, issuer_id=issuer_id, user_id=None, stage=STAGE,
            methods=[], return_to=return_to,
            data={"source_type": source.type, "source_id": source.id, "state": state, "nonce": nonce,
                  "verifier": verifier})
    url = client.authorization_url(source.provider, where,
                                   redirect_uri=redirect_uri(_public(request), issuer_id, source.id),
                                   state=state, nonce=nonce, code_verifier=verifier)
    response = _redirect(url)
    set_cookie(response, request, federation_cookie_name(issuer_id), cookie, issuer_id,
               max_age=flow.PENDING_TTL_MS // 1000)
    return response


@router.get("/{issuer_id}/login/federated/{source_id}/callback", include_in_schema=False)
async def callback(issuer_id: str, source_id: str, request: Request) -> Response:
    """The upstream's answer: check it, then sign in, link, provision or refuse."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    server_key = request.app.state.secret_key
    query = request.query_params
    ip = client_ip(request)
    async with request.app.state.db.unit_of_work() as session:
        pending = await flow.find_pending(session, server_key, issuer_id,
                                          request.cookies.get(federation_cookie_name(issuer_id)), (STAGE,))
        params = open_return(server_key, issuer_id, pending.return_to) if pending else None
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if pending is None or params is None or pending.data.get("source_id") != source_id:
            await _failed(session, keys, source_id, ip, "no_pending_sign_in")
            return message_page(t("sign_in_error"), t("expired"), status_code=400, **ctx)
        if not constant_time_equals(str(query.get("state") or ""), str(pending.data.get("state"))):
            # Not this browser's request: refused, and its own sign-in stays as it was.
            await _failed(session, keys, source_id, ip, "state_mismatch")
            return message_page(t("sign_in_error"), t("link_invalid"), status_code=400, **ctx)
        data = dict(pending.data)
        await flow.drop_pending(session, pending)  # state, nonce and verifier are single use
        error = query.get("error")
        if error is not None or not query.get("code"):
            code = error if error and _ERROR_CODE.match(error) else "invalid_response"
            await _failed(session, keys, source_id, ip, "upstream_error",
                          f"{code}: {query.get('error_description') or ''}")
            return message_page(t("sign_in_error"), t("upstream_error", error=code), status_code=400, **ctx)
        source = await load_source(session, keys, source_id)
        if source is None or source.secret_encrypted is None:
            await _failed(session, keys, source_id, ip, "source_disabled")
            return message_page(t("sign_in_error"), t("link_invalid"), status_code=400, **ctx)
        secret = decrypt(server_key, source.secret_encrypted, source.id.encode()).decode()
        try:
            where = await client.endpoints(source.provider, allow_private=_allow_private(request))
            assertion = await client.exchange(
                source.provider, where, secret=secret, redirect_uri=redirect_uri(_public(request), issuer_id,
                                                                                 source.id),
                code=str(query["code"]), code_verifier=str(data["verifier"]), nonce=str(data["nonce"]),
                allow_private=_allow_private(request))
        except client.UpstreamError as exc:
            await _failed(session, keys, source_id, ip, "upstream_unverified", str(exc))
            return message_page(t("sign_in_error"), t("upstream_failed"), status_code=400, **ctx)
        return await _conclude(session, request, keys, source, assertion, params, pending.return_to, ip, ctx)


async def _conclude(session: AsyncSession, request: Request, keys: KeySet, source: Source,
                    assertion: identities.Assertion, params: list[tuple[str, str]], return_to: str, ip: str,
                    ctx: dict[str, Any]) -> Response:
    t = ctx["t"]
    issuer_id = keys.issuer_id
    identity = await identities.find_identity(session, account_id=keys.account_id, issuer_id=issuer_id,
                                              source_id=source.id, subject=assertion.subject)
    user = None
    if identity is not None:
        user = await identities.active_user(session, keys.account_id, issuer_id, identity.user_id)
        if user is None:
            await _failed(session, keys, source.id, ip, "user_inactive", user_id=identity.user_id)
            return message_page(t("sign_in_error"), t("upstream_failed"), status_code=403, **ctx)
        identity.last_used_at = now_ms()
        if source.org is not None:
            await identities.ensure_membership(session, source.org, user)
    elif source.org is not None:
        # An organization's connection: only emails on its own verified domains, ever.
        domains = await identities.verified_domains(session, source.org)
        if assertion.domain is None or assertion.domain not in domains:
            await _failed(session, keys, source.id, ip, "email_outside_verified_domains")
            return message_page(t("sign_in_error"), t("sso_outside_domains"), status_code=403, **ctx)
        existing = await identities.user_by_email(session, keys.account_id, issuer_id, str(assertion.email))
        if existing is not None and existing.status != "active":
            await _failed(session, keys, source.id, ip, "user_inactive", user_id=existing.id)
            return message_page(t("sign_in_error"), t("upstream_failed"), status_code=403, **ctx)
        if existing is not None:
            user = existing
            await identities.link(session, user, source_type=source.type, source_id=source.id,
                                  assertion=assertion, via="verified_domain")
            await identities.ensure_membership(session, source.org, user)
        else:
            user = await identities.provision(session, account_id=keys.account_id, issuer_id=issuer_id,
                                              source_type=source.type, source_id=source.id,
                                              assertion=assertion, org=source.org)
    else:
        existing = (await identities.user_by_email(session, keys.account_id, issuer_id, assertion.email)
                    if assertion.email else None)
        # Checked before anything is linked or created: an sso_only organization's people (members,
        # or emails on its verified domains) come in through its connection only.
        if existing is not None and existing.status == "active":
            refused = await sso_refusal(session, request, keys, existing, params, ip, "federated")
            if refused is not None:
                return refused
        elif existing is None and assertion.domain:
            org = await identities.organization_for_domain(session, account_id=keys.account_id,
                                                           issuer_id=issuer_id, domain=assertion.domain)
            if org is not None and org.sso.get("sso_only") is True:
                await _failed(session, keys, source.id, ip, "sso_required")
                return message_page(t("sign_in_error"), t("sso_required", name=org.name or org.id),
                                    status_code=403, **ctx)
        trusted = source.provider.trust_verified_email and assertion.email_verified
        if existing is not None and trusted and existing.status == "active":
            user = existing
            await identities.link(session, user, source_type=source.type, source_id=source.id,
                                  assertion=assertion, via="verified_email")
        elif existing is not None:
            return await _ask_to_link(session, request, keys, source, assertion, return_to, ctx)
        else:
            user = await identities.provision(session, account_id=keys.account_id, issuer_id=issuer_id,
                                              source_type=source.type, source_id=source.id,
                                              assertion=assertion, org=None)
    refused = await sso_refusal(session, request, keys, user, params, ip, "federated",
                                via_org=source.org.id if source.org else None)
    if refused is not None:
        return refused
    await record(session, type="user.verification.succeeded", account_id=keys.account_id,
                 issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                 data={"method": "federated", "source_type": source.type, "source_id": source.id, "ip": ip},
                 auth=flow.event_auth(user.id, issuer_id, ip))
    response = await after_first_factor(session, request, keys, user, return_to, params, ip, ["fed"])
    clear_cookie(response, request, federation_cookie_name(issuer_id), issuer_id)
    return response


async def _ask_to_link(session: AsyncSession, request: Request, keys: KeySet, source: Source,
                       assertion: identities.Assertion, return_to: str, ctx: dict[str, Any]) -> Response:
    """An account with this email exists, and the upstream's word is not enough: the user signs in
    to it once, and the identity links then (the link waits in this browser, nothing else changes)."""
    t = ctx["t"]
    _, cookie = await flow.create_pending(
        session, request.app.state.secret_key, account_id=keys.account_id, issuer_id=keys.issuer_id,
        user_id=None, stage="link", methods=[], return_to=return_to,
        data={"source_type": source.type, "source_id": source.id, "subject": assertion.subject,
              "email": assertion.email})
    login = f"/{keys.issuer_id}/login?" + urlencode({"return": return_to, "hint": assertion.email or ""})
    response = render("message.html", 200, title=t("link_title"), is_error=False,
                      message=t("link_intro", email=assertion.email, provider=source.name),
                      action_url=login, action_label=t("link_continue"), **ctx)
    set_cookie(response, request, link_cookie_name(keys.issuer_id), cookie, keys.issuer_id,
               max_age=flow.PENDING_TTL_MS // 1000)
    clear_cookie(response, request, federation_cookie_name(keys.issuer_id), keys.issuer_id)
    return response


@router.post("/{issuer_id}/login/sso", include_in_schema=False)
async def discover(issuer_id: str, request: Request) -> Response:
    """Home-realm discovery: an email whose domain an organization verified goes to its connection."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    form = await request.form()
    return_to = str(form.get("return") or "")
    params = open_return(request.app.state.secret_key, issuer_id, return_to)
    async with request.app.state.db.sessionmaker() as session:
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if params is None:
            return message_page(t("sign_in_error"), t("link_invalid"), **ctx)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not same_origin(request,
                                                                                       _public(request)):
            return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
        email = str(form.get("email") or "")[:320].strip()
        org = None
        if "@" in email:
            org = await identities.organization_for_domain(session, account_id=keys.account_id,
                                                           issuer_id=issuer_id,
                                                           domain=email.rsplit("@", 1)[1])
    if org is None:
        back = f"/{issuer_id}/login?" + urlencode({"return": return_to, "hint": email})
        return render("message.html", 404, title=t("sign_in_error"), is_error=True, message=t("sso_unknown"),
                      action_url=back, action_label=t("sign_in"), **ctx)
    return _redirect(f"/{issuer_id}/login/federated/{org.id}?" + urlencode({"return": return_to}))
