"""A second issuer of the same authpi server as the upstream OpenID Provider, and a driver that
walks a browser (httpx with a cookie jar) through both issuers' hosted pages over real HTTP."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import asyncpg
import httpx
from authpi_admin import AuthPIAdmin

from tests.hosted.helpers import claims_of
from tests.oidc.helpers import PASSWORD, REDIRECT, OidcSetup, authorize_params, form_fields, pkce_pair


@dataclass
class Upstream:
    """Issuer U, whose client `client_id` may redirect to the downstream's federation callback."""

    issuer_id: str
    client_id: str
    client_secret: str

    def url(self, base: str) -> str:
        return f"{base}/{self.issuer_id}"


async def make_upstream(admin: AuthPIAdmin, redirect_uris: list[str]) -> Upstream:
    issuer = await admin.issuers.create({"name": "upstream-idp"})
    client = await admin.issuer(issuer.id).clients.create({
        "name": "authpi-downstream", "type": "external", "confidential": True,
        "settings": {"protocol": "oidc", "scopes": ["openid", "profile", "email"],
                     "openid": {"application_type": "web", "grant_types": ["authorization_code"],
                                "redirect_uris": redirect_uris}}})
    return Upstream(issuer.id, client.id, str(client.secret))


async def upstream_user(admin: AuthPIAdmin, upstream: Upstream, email: str, *, verified: bool) -> str:
    user = await admin.issuer(upstream.issuer_id).users.create({
        "username_type": "email", "username": email, "password": PASSWORD,
        "profile": {"first_name": "Up", "last_name": "Stream", "email_verified": verified}})
    return user.id


def callback_url(base: str, issuer_id: str, source_id: str) -> str:
    return f"{base}/{issuer_id}/login/federated/{source_id}/callback"


async def social_method(admin: AuthPIAdmin, base: str, down: OidcSetup, *, trust: bool = False,
                        type: str = "oidc") -> tuple[str, Upstream]:
    """An upstream auth method of the downstream issuer, served by a new upstream issuer."""
    methods = admin.issuer(down.issuer_id).auth_methods
    m = (await methods.create({"type": type, "name": "Upstream IdP", "enabled": False})).model_dump()
    up = await make_upstream(admin, [callback_url(base, down.issuer_id, m["id"])])
    settings = {"issuer": up.url(base), "client_id": up.client_id, "client_secret": up.client_secret,
                "trust_verified_email": trust}
    await methods.update(m["id"], {"enabled": True, "settings": settings})
    return m["id"], up


class Walker:
    """One browser: follows redirects within the server, signs in at the upstream's login page."""

    def __init__(self, http: httpx.AsyncClient, base: str, down: OidcSetup) -> None:
        self.http, self.base, self.down = http, base, down
        self.verifier = ""
        self.upstream_redirect: str | None = None  # the upstream's redirect to our callback

    def authorize_url(self, **extra: str) -> str:
        self.verifier, challenge = pkce_pair()
        return (f"{self.base}/{self.down.issuer_id}/authorize?"
                + urlencode(authorize_params(self.down, challenge, **extra)))

    async def follow(self, r: httpx.Response, *, username: str | None = None,
                     stop_at_callback: bool = False) -> httpx.Response:
        """Follow redirects until the client's redirect URI, a page, or (optionally) our callback.
        At the upstream's login page, sign in as `username`."""
        for _ in range(20):
            if r.status_code in (302, 303):
                target = urljoin(str(r.url), r.headers["location"])
                if target.startswith(REDIRECT):
                    return r
                if "/login/federated/" in target and "/callback" in target:
                    self.upstream_redirect = target
                    if stop_at_callback:
                        return r
                r = await self.http.get(target)
                continue
            if r.status_code == 200 and username and 'id="password"' in r.text and \
                    f"/{self.down.issuer_id}/" not in str(r.url):
                r = await self.http.post(str(r.url).split("?")[0], data={
                    **form_fields(r.text), "username": username, "password": PASSWORD},
                    headers={"Origin": self.base})
                username = None
                continue
            return r
        raise AssertionError("too many redirects")

    async def login_page(self, **extra: str) -> httpx.Response:
        r = await self.http.get(self.authorize_url(**extra))
        assert r.status_code == 302, r.text
        page = await self.http.get(urljoin(str(r.url), r.headers["location"]))
        return page

    async def via_button(self, username: str, **extra: str) -> httpx.Response:
        page = await self.login_page(**extra)
        assert page.status_code == 200, page.text
        found = re.search(r'class="button secondary upstream" href="([^"]+)"', page.text)
        assert found, page.text
        return await self.follow(await self.http.get(urljoin(str(page.url), unescape(found.group(1)))),
                                 username=username)

    async def via_source(self, source_id: str, username: str, **extra: str) -> httpx.Response:
        """Straight to an upstream's start (as a link to it would), with this request's return."""
        page = await self.login_page(**extra)
        start = f"{self.base}/{self.down.issuer_id}/login/federated/{source_id}?" + urlencode(
            {"return": unescape(form_fields(page.text)["return"])})
        return await self.follow(await self.http.get(start), username=username)

    async def via_email(self, email: str, username: str, **extra: str) -> httpx.Response:
        page = await self.login_page(**extra)
        assert 'id="sso-form"' in page.text, page.text
        r = await self.http.post(f"{self.base}/{self.down.issuer_id}/login/sso",
                                 data={**form_fields(page.text), "email": email},
                                 headers={"Origin": self.base})
        return await self.follow(r, username=username)

    async def tokens(self, final: httpx.Response) -> dict[str, Any]:
        assert final.status_code in (302, 303), final.text
        location = final.headers["location"]
        assert location.startswith(REDIRECT), location
        code = parse_qs(urlsplit(location).query)["code"][0]
        r = await self.http.post(f"{self.base}/{self.down.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": self.verifier, "client_id": self.down.web_id,
            "client_secret": self.down.web_secret})
        assert r.status_code == 200, r.text
        return claims_of(r.json()["id_token"])


async def snapshot(pg: asyncpg.Pool, account_id: str, issuer_id: str) -> dict[str, int]:
    """What a refusal must leave as it was at the downstream issuer: users, identities, memberships,
    sessions, codes (the upstream issuer's own session is its business)."""
    out = {}
    for table in ("users", "federated_identities", "memberships", "login_sessions",
                  "authorization_codes"):
        query = f"SELECT count(*) FROM {table} WHERE account_id = $1 AND issuer_id = $2"
        out[table] = int(await pg.fetchval(query, account_id, issuer_id))
    return out


async def events_of(pg: asyncpg.Pool, account_id: str, type: str) -> list[dict[str, Any]]:
    rows = await pg.fetch("SELECT data::text AS d, user_id FROM events WHERE account_id = $1 AND type = $2 "
                          "ORDER BY id", account_id, type)
    return [{**json.loads(r["d"]), "_user_id": r["user_id"]} for r in rows]
