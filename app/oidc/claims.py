"""What a token says about its user: profile/email claims by scope and the `organizations` claim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.membership.service import organizations_claim
from app.models.user import User


async def load_active_user(session: AsyncSession, account_id: str, issuer_id: str, user_id: str
                           ) -> User | None:
    return await session.scalar(select(User).where(
        User.id == user_id, User.account_id == account_id, User.issuer_id == issuer_id,
        User.status == "active"))


async def organizations(session: AsyncSession, account_id: str, issuer_id: str, user_id: str
                        ) -> list[dict[str, Any]]:
    """Active memberships of active organizations, each with effective scopes (membership service)."""

    return await organizations_claim(session, account_id=account_id, issuer_id=issuer_id, user_id=user_id)


@dataclass(slots=True)
class UserView:
    """What the claims read of a user, without an ORM instance (the one-statement grants)."""

    id: str
    username: str
    username_type: str
    profile: dict[str, Any]
    security: dict[str, Any]
    created_at: int
    updated_at: int | None


def profile_claims(user: User | UserView, scopes: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    profile = user.profile or {}
    if "email" in scopes:
        email = profile.get("email") or (user.username if user.username_type == "email" else None)
        if isinstance(email, str):
            out["email"] = email
            verified = (user.security or {}).get("email_verified", profile.get("email_verified", False))
            out["email_verified"] = bool(verified)
    if "profile" in scopes:
        given, family = profile.get("first_name"), profile.get("last_name")
        if isinstance(given, str):
            out["given_name"] = given
        if isinstance(family, str):
            out["family_name"] = family
        name = profile.get("name") or " ".join(p for p in (given, family) if isinstance(p, str)) or None
        if isinstance(name, str) and name:
            out["name"] = name
        for claim in ("picture", "locale"):
            if isinstance(profile.get(claim), str):
                out[claim] = profile[claim]
        out["preferred_username"] = user.username
        out["updated_at"] = (user.updated_at or user.created_at) // 1000
    return out
