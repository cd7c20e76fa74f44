"""Driving the console over HTTP as a browser would: forms, their CSRF tokens, the session cookie."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key_id: str, secret: str) -> httpx.Response:
    page = await client.get("/console/sign-in")
    assert page.status_code == 200
    return await client.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "key_id": key_id, "secret": secret}
    )


async def post_form(
    client: httpx.AsyncClient, page_url: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Load the page the form lives on (for its CSRF token), then submit the form."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf": csrf_of(page.text), **data})
