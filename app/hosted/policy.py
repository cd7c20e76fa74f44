"""What an issuer and its organizations demand at sign-in, and what a user has to offer.

- `settings.security.mfa_required` on the issuer, or `security.mfa_required` on any organization
  the user is an active member of (tokens carry every such organization in `organizations`),
  demands a second factor.
- An auth method row with `enabled: false` turns that method off: it is not offered and is refused
  when posted. Disabling `totp` or `passkey` stops new enrolments only; a user already enrolled is
  still asked (disabling a factor never weakens an existing user's sign-in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.identity.providers import RUNNABLE_TYPES
from app.models.auth_method import IssuerAuthMethod
from app.models.issuer import Issuer
from app.models.membership import Membership
from app.models.organization import Organization
from app.models.user_verifier import UserVerifier

ACR_1FA = "urn:authpi:acr:1fa"
ACR_2FA = "urn:authpi:acr:2fa"
ACR_PHR = "phr"
ACR_VALUES = [ACR_1FA, ACR_2FA, ACR_PHR]
_RANK = {ACR_1FA: 1, ACR_2FA: 2, ACR_PHR: 3}
SECOND_FACTORS = frozenset({"otp", "hwk", "swk"})


@dataclass
class Policy:
    mfa_required: bool
    disabled: set[str]
    totp: list[UserVerifier] = field(default_factory=list)
    passkeys: list[UserVerifier] = field(default_factory=list)

    @property
    def has_second_factor(self) -> bool:
        return bool(self.totp or self.passkeys)


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


async def disabled_methods(session: AsyncSession, account_id: str, issuer_id: str) -> set[str]:
    rows = await session.scalars(select(IssuerAuthMethod.type).where(
        IssuerAuthMethod.account_id == account_id, IssuerAuthMethod.issuer_id == issuer_id,
        IssuerAuthMethod.enabled.is_(False)))
    return set(rows.all())


async def upstream_buttons(session: AsyncSession, account_id: str, issuer_id: str) -> list[tuple[str, str]]:
    """(method id, label) of each enabled upstream identity provider: one button each."""
    columns = (IssuerAuthMethod.id, IssuerAuthMethod.type, IssuerAuthMethod.name)
    rows = await session.execute(select(*columns).where(
        IssuerAuthMethod.account_id == account_id, IssuerAuthMethod.issuer_id == issuer_id,
        IssuerAuthMethod.enabled.is_(True), IssuerAuthMethod.type.in_(RUNNABLE_TYPES)
    ).order_by(IssuerAuthMethod.id))
    labels = {"google": "Google", "microsoft": "Microsoft", "github": "GitHub", "oidc": "OpenID Connect"}
    return [(id, name or labels[type]) for id, type, name in rows.all()]


async def has_sso(session: AsyncSession, account_id: str, issuer_id: str) -> bool:
    """Does any organization of the issuer sign its people in through its own connection?"""
    found = await session.scalar(select(Organization.id).where(
        Organization.account_id == account_id, Organization.issuer_id == issuer_id,
        Organization.status == "active", Organization.sso.contains({"enabled": True})).limit(1))
    return found is not None


async def mfa_required(session: AsyncSession, account_id: str, issuer_id: str, user_id: str) -> bool:
    settings = await session.scalar(select(Issuer.settings).where(
        Issuer.id == issuer_id, Issuer.account_id == account_id))
    if _flag(((settings or {}).get("security") or {}).get("mfa_required")):
        return True
    flags = await session.scalars(
        select(Organization.security["mfa_required"].astext)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.account_id == account_id, Membership.issuer_id == issuer_id,
               Membership.member_id == user_id, Membership.status == "active",
               Organization.account_id == account_id, Organization.status == "active"))
    return any(_flag(f) for f in flags.all())


async def load_policy(session: AsyncSession, account_id: str, issuer_id: str, user_id: str) -> Policy:
    factors = (await session.scalars(select(UserVerifier).where(
        UserVerifier.account_id == account_id, UserVerifier.issuer_id == issuer_id,
        UserVerifier.user_id == user_id, UserVerifier.status == "active"
    ).order_by(UserVerifier.id))).all()
    return Policy(mfa_required=await mfa_required(session, account_id, issuer_id, user_id),
                  disabled=await disabled_methods(session, account_id, issuer_id),
                  totp=[v for v in factors if v.type == "totp"],
                  passkeys=[v for v in factors if v.type == "passkey"])


def amr_for(methods: list[str]) -> list[str]:
    """RFC 8176 values: the methods used, plus `mfa` when they span two factors."""
    out = list(dict.fromkeys(methods))
    keys = {"hwk", "swk"} & set(out)
    # A passkey with user verification is two factors by itself (possession + the user's PIN or
    # biometric); a password with any second factor is two as well.
    if ("pwd" in out and SECOND_FACTORS & set(out)) or (keys and "user" in out):
        out.append("mfa")
    return out


def acr_for(amr: list[str]) -> str:
    if "hwk" in amr or "swk" in amr:
        return ACR_PHR
    return ACR_2FA if "mfa" in amr else ACR_1FA


def requested_acr(acr_values: str | None) -> str | None:
    """The weakest acr the client accepts among those it asked for that this server knows."""
    known = [v for v in (acr_values or "").split() if v in _RANK]
    return min(known, key=_RANK.__getitem__) if known else None


def acr_satisfies(have: str | None, wanted: str | None) -> bool:
    return wanted is None or _RANK.get(have or ACR_1FA, 1) >= _RANK[wanted]


def session_qualifies(authentication: dict[str, Any], *, required: bool, acr_values: str | None) -> bool:
    """Does this login session meet the policy (`mfa_required`) and the client's `acr_values`?
    A trusted device counts as the second factor for the policy, never for an explicit acr."""
    if required and not authentication.get("mfa"):
        return False
    return acr_satisfies(authentication.get("acr"), requested_acr(acr_values))
