"""Issuer and organization branding (hosted pages, emails), constrained to safe values: a name
(escaped by the templates), an https logo URL and a `#rrggbb` colour."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.issuer import Issuer
from app.models.organization import Organization

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOR = "#222222"


@dataclass(frozen=True)
class Brand:
    name: str
    logo_url: str | None = None
    primary_color: str = DEFAULT_COLOR
    # Black or white, whichever reads better on the primary colour (WCAG contrast).
    text_color: str = "#ffffff"
    organization_name: str | None = None
    organization_logo_url: str | None = None


def safe_logo(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 2048 or any(c in value for c in "\"'<>\\ \t\r\n"):
        return None
    parts = urlsplit(value)
    return value if parts.scheme == "https" and parts.netloc else None


def safe_name(value: Any, fallback: str) -> str:
    return value.strip()[:100] if isinstance(value, str) and value.strip() else fallback


def _luminance(color: str) -> float:
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(color[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def make_brand(issuer_name: str, branding: Any, org: Organization | None = None) -> Brand:
    branding = branding if isinstance(branding, dict) else {}
    color = branding.get("primary_color")
    color = color.lower() if isinstance(color, str) and _COLOR.match(color) else DEFAULT_COLOR
    lum = _luminance(color)
    text = "#ffffff" if _contrast(lum, 1.0) >= _contrast(lum, 0.0) else "#000000"
    return Brand(name=safe_name(branding.get("name"), issuer_name),
                 logo_url=safe_logo(branding.get("logo_url")),
                 primary_color=color, text_color=text,
                 organization_name=safe_name(org.name, "") or None if org is not None else None,
                 organization_logo_url=safe_logo(org.logo_url) if org is not None else None)


async def load_brand(session: AsyncSession, *, account_id: str, issuer_id: str, issuer_name: str,
                     org_id: str | None = None) -> Brand:
    settings = await session.scalar(select(Issuer.settings).where(
        Issuer.id == issuer_id, Issuer.account_id == account_id))
    org = None
    if org_id and org_id.startswith("org_") and len(org_id) <= 40:
        org = await session.scalar(select(Organization).where(
            Organization.id == org_id, Organization.account_id == account_id,
            Organization.issuer_id == issuer_id, Organization.status == "active"))
    return make_brand(issuer_name, (settings or {}).get("branding"), org)
