"""Drive the hosted sign-in over HTTP (the in-process app or a live server)."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pyotp
from authpi_admin import AuthPIAdmin

from tests.oidc.helpers import PASSWORD, REDIRECT, OidcSetup, authorize_params, form_fields, pkce_pair


def next_code(secret: str, steps: int = 1) -> str:
    """A code of a later time step (the one of `now` was spent by the enrolment)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


async def enrol_totp(admin: AuthPIAdmin, issuer_id: str, user_id: str) -> tuple[str, str, list[str]]:
    """(verifier_id, secret, backup_codes) through the admin API."""
    verifiers = admin.issuer(issuer_id).user(user_id).verifiers
    enrollment = await verifiers.create({"type": "totp", "name": "Phone"})
    done = await verifiers.complete_enrollment({"enrollment_id": enrollment.enrollment_id,
                                                "code": pyotp.TOTP(enrollment.secret).now()})
    assert done.success
    return str(done.verifier_id), str(enrollment.secret), list(done.backup_codes)


def browser_of(app: Any) -> httpx.AsyncClient:
    """A fresh cookie jar against the in-process app."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                             headers={"Origin": "http://testserver"})


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


class Browser:
    """One browser (its cookie jar) signing in at one issuer."""

    def __init__(self, http: httpx.AsyncClient, setup: OidcSetup, base: str = "http://testserver") -> None:
        self.http, self.setup, self.base = http, setup, base
        self.verifier = ""

    def authorize_url(self, **extra: str) -> str:
        self.verifier, challenge = pkce_pair()
        return (f"{self.base}/{self.setup.issuer_id}/authorize?"
                + urlencode(authorize_params(self.setup, challenge, **extra)))

    async def password(self, password: str = PASSWORD, **extra: str) -> httpx.Response:
        """/authorize, then the password form; returns the answer to the password POST."""
        r = await self.http.get(self.authorize_url(**extra))
        assert r.status_code == 302, r.text
        assert "/login?" in r.headers["location"]
        login_url = urljoin(str(r.url), r.headers["location"])
        page = await self.http.get(login_url)
        assert page.status_code == 200, page.text
        return await self.http.post(login_url.split("?")[0], data={
            **form_fields(page.text), "username": self.setup.username, "password": password})

    async def follow(self, r: httpx.Response) -> httpx.Response:
        while r.status_code in (302, 303) and not r.headers["location"].startswith(REDIRECT):
            r = await self.http.get(urljoin(str(r.url), r.headers["location"]))
        return r

    async def second_factor(self, code: str, trust: bool = False) -> httpx.Response:
        url = f"{self.base}/{self.setup.issuer_id}/login/second-factor"
        page = await self.http.get(url)
        assert page.status_code == 200, page.text
        data = {"csrf": csrf(page.text), "code": code}
        if trust:
            data["trust"] = "on"
        return await self.http.post(url, data=data)

    async def tokens(self, final: httpx.Response) -> dict:
        assert final.status_code == 302, final.text
        assert final.headers["location"].startswith(REDIRECT), final.headers["location"]
        query = parse_qs(urlsplit(final.headers["location"]).query)
        r = await self.http.post(f"{self.base}/{self.setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
            "code_verifier": self.verifier, "client_id": self.setup.web_id,
            "client_secret": self.setup.web_secret})
        assert r.status_code == 200, r.text
        return r.json()


def claims_of(jwt: str) -> dict:
    import base64
    import json

    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
