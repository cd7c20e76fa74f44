"""Shared OIDC test helpers: a ready issuer with clients and a user, and a hosted-login driver."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
from authpi_admin import AuthPIAdmin

PASSWORD = "correct horse battery staple 42"
REDIRECT = "http://localhost:3000/api/auth/callback"
LOGOUT_REDIRECT = "http://localhost:3000/signed-out"


@dataclass
class OidcSetup:
    issuer_id: str
    web_id: str
    web_secret: str
    public_id: str
    m2m_id: str
    m2m_secret: str
    user_id: str
    username: str
    org_id: str

    def issuer_url(self, base: str) -> str:
        return f"{base}/{self.issuer_id}"


async def make_setup(admin: AuthPIAdmin, *, redirect: str = REDIRECT) -> OidcSetup:
    issuer = await admin.issuers.create({"name": "acme-prod"})
    clients = admin.issuer(issuer.id).clients
    web = await clients.create({
        "name": "acme-web", "type": "external", "confidential": True,
        "settings": {"protocol": "oidc", "scopes": ["openid", "profile", "email", "offline_access"],
                     "openid": {"application_type": "web",
                                "grant_types": ["authorization_code", "refresh_token"],
                                "redirect_uris": [redirect],
                                "post_logout_redirect_uris": [LOGOUT_REDIRECT]}}})
    public = await clients.create({
        "name": "acme-cli", "confidential": False,
        "settings": {"scopes": ["openid", "profile"], "openid": {
            "application_type": "native", "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["http://127.0.0.1/callback"]}}})
    m2m = await clients.create({
        "name": "svc", "settings": {"scopes": ["invoices:read", "invoices:write"], "openid": {
            "application_type": "service", "grant_types": ["client_credentials"]}}})
    username = "ada@globex.example"
    user = await admin.issuer(issuer.id).users.create({
        "username_type": "email", "username": username, "password": PASSWORD,
        "profile": {"first_name": "Ada", "last_name": "Lovelace"}})
    org = await admin.issuer(issuer.id).organizations.create({"name": "Globex Corp"})
    await admin.issuer(issuer.id).organization(org.id).members.create(
        {"member_id": user.id, "scopes": ["invoices:read", "invoices:write"]})
    return OidcSetup(issuer.id, web.id, str(web.secret), public.id, m2m.id, str(m2m.secret), user.id,
                     username, org.id)


async def set_web_openid(admin: AuthPIAdmin, setup: OidcSetup, **openid: object) -> None:
    """Replace the web client's settings with make_setup's plus `openid` extras."""
    await admin.issuer(setup.issuer_id).clients.update(setup.web_id, {"settings": {
        "scopes": ["openid", "profile", "email", "offline_access"],
        "openid": {"application_type": "web", "grant_types": ["authorization_code", "refresh_token"],
                   "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [LOGOUT_REDIRECT],
                   **openid}}})


def form_fields(html: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r'name="(csrf|return)" value="([^"]*)"', html)}


async def sign_in(http: httpx.AsyncClient, authorize_url: str, username: str, password: str = PASSWORD
                  ) -> httpx.Response:
    """Follow /authorize through the hosted login form; returns the final redirect (to the client)."""
    r = await http.get(authorize_url)
    if r.status_code == 302 and "/login?" in r.headers["location"]:
        login_url = urljoin(str(r.url), r.headers["location"])
        page = await http.get(login_url)
        assert page.status_code == 200, page.text
        fields = form_fields(page.text)
        # As a browser posting our own form: with its Origin.
        origin = f"{r.url.scheme}://{r.url.netloc.decode()}"
        r = await http.post(login_url.split("?")[0], data={**fields, "username": username,
                                                            "password": password},
                            headers={"Origin": origin})
        if r.status_code != 303:
            return r
        r = await http.get(urljoin(str(r.url), r.headers["location"]))
    return r


def pkce_pair() -> tuple[str, str]:
    import base64
    import hashlib
    import secrets

    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(setup: OidcSetup, challenge: str, **extra: str) -> dict[str, str]:
    params = {"client_id": setup.web_id, "redirect_uri": REDIRECT, "response_type": "code",
              "scope": "openid profile email", "state": "st-1", "nonce": "n-1",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


async def get_code(http: httpx.AsyncClient, setup: OidcSetup, base: str = "http://testserver", **extra: str
                   ) -> tuple[str, str]:
    """(code, verifier) through the hosted login."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    verifier, challenge = pkce_pair()
    url = f"{base}/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge, **extra))
    r = await sign_in(http, url, setup.username)
    assert r.status_code == 302, r.text
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert "code" in query, r.headers["location"]
    return query["code"][0], verifier


async def code_tokens(http: httpx.AsyncClient, setup: OidcSetup, base: str = "http://testserver"
                      ) -> dict[str, str]:
    code, verifier = await get_code(http, setup, base)
    r = await http.post(f"{base}/{setup.issuer_id}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": setup.web_id, "client_secret": setup.web_secret})
    assert r.status_code == 200, r.text
    return r.json()
