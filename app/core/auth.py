"""Who is calling: a Principal from HTTP Basic (API keys) or Bearer (JWT access tokens).

The core knows only the credential shapes; the verifiers are registered by the packages that own
them (api_key for Basic, oidc for Bearer) through `CredentialVerifiers` on app.state.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Path, Request

from app.core.errors import Forbidden, InsufficientScope, NotFound, Unauthorized
from app.core.scopes import has_access


@dataclass(frozen=True)
class Principal:
    # api_key | user | personal_token (the CallerIdentity.type values)
    type: str
    account_id: str
    # True when the credential acts for the whole account (account API key, account user token).
    account_level: bool
    scopes: tuple[str, ...] = ()
    key_id: str | None = None
    org_id: str | None = None
    issuer_id: str | None = None
    user_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # An account key's `restrictions.issuer_ids`: the delegated admin of these issuers only.
    # None: the whole account (see `check_issuer_limit`).
    issuer_ids: tuple[str, ...] | None = None

    def event_auth(self) -> dict[str, Any]:
        """How the trail records who did something."""
        out: dict[str, Any] = {"type": self.type}
        for name in ("key_id", "user_id", "org_id", "issuer_id"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out

    @property
    def actor_id(self) -> str:
        return self.key_id or self.user_id or self.account_id


BasicVerifier = Callable[[Request, str, str], Awaitable[Principal]]
BearerVerifier = Callable[[Request, str], Awaitable[Principal]]


@dataclass
class CredentialVerifiers:
    basic: BasicVerifier | None = None
    bearer: BearerVerifier | None = None


MAX_AUTH_HEADER = 8192


def split_basic(value: str | bytes) -> tuple[str, str] | None:
    """The (user, password) of a Basic credential's base64 part, or None when it is malformed.

    The one decoder of HTTP Basic: the admin API, the /v1/me fast path and OAuth client
    authentication all use it (each then applies its own rules to the two parts).
    """
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def parse_basic(value: str) -> tuple[str, str]:
    parts = split_basic(value)
    if parts is None or not parts[0] or not parts[1]:
        raise Unauthorized("Malformed Basic credentials")
    return parts


async def authenticate(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Authentication required")
    if len(header) > MAX_AUTH_HEADER:
        raise Unauthorized("Malformed credentials")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    verifiers: CredentialVerifiers = request.app.state.verifiers
    scheme = scheme.lower()
    if scheme == "basic" and verifiers.basic is not None:
        key_id, secret = parse_basic(value)
        principal = await verifiers.basic(request, key_id, secret)
    elif scheme in ("bearer", "dpop") and verifiers.bearer is not None and value:
        # DPoP (RFC 9449) is checked by the Bearer verifier, which owns access tokens.
        principal = await verifiers.bearer(request, value)
    else:
        raise Unauthorized("Unsupported authorization scheme")
    request.state.principal = principal
    return principal


async def current_principal(request: Request) -> Principal:
    return await authenticate(request)


async def _account_caller(
    account_id: str = Path(..., max_length=64),
    principal: Principal = Depends(current_principal),
) -> Principal:
    """The caller, checked to act for the account in the path. Another account's id is a 404."""
    if principal.account_id != account_id:
        raise NotFound("account")
    if not principal.account_level:
        raise Forbidden("This credential cannot manage the account")
    return principal


def check_issuer_limit(request: Request, principal: Principal, *, filters_issuers: bool = False) -> None:
    """The one rule of issuer-limited account keys (`restrictions.issuer_ids`, a delegated admin).

    Under `/issuers/{issuer_id}` another issuer of the account is a 404, as another tenant's is.
    Every other account-level route is refused (403) unless it declares that it filters what it
    answers to `principal.issuer_ids` itself (`filters_issuers`, e.g. the issuers list): resources
    that span issuers (account keys, webhooks, domains, events, usage, creating issuers) are the
    whole account's, and a route added later is refused until it says otherwise.
    """
    if principal.issuer_ids is None:
        return
    issuer_id = request.path_params.get("issuer_id")
    if issuer_id is not None:
        if issuer_id not in principal.issuer_ids:
            raise NotFound("issuer")
        return
    if not filters_issuers:
        raise Forbidden("This API key is limited to some issuers: it cannot use account-level routes")


async def account_principal(
    request: Request,
    principal: Principal = Depends(_account_caller),
) -> Principal:
    """The caller, checked to act for the account in the path (another account's id is a 404) and,
    for an issuer-limited key, for the issuer in the path (see `check_issuer_limit`)."""
    check_issuer_limit(request, principal)
    return principal


async def issuer_filtering_principal(
    request: Request,
    principal: Principal = Depends(_account_caller),
) -> Principal:
    """As `account_principal`, for a route that answers an issuer-limited key with what lies
    within its issuers only (it filters or 404s the rest itself)."""
    check_issuer_limit(request, principal, filters_issuers=True)
    return principal


def require_scope(principal: Principal, resource: str, action: str) -> None:
    if not has_access(principal.scopes, resource, action):
        raise InsufficientScope(f"The credential lacks the scope {resource}:{action}")


def scoped(resource: str, action: str, *, filters_issuers: bool = False
           ) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the account caller, holding `resource:action` (grammar of §4.6).

    `filters_issuers`: the route answers an issuer-limited key with its own issuers only."""

    async def dependency(request: Request, principal: Principal = Depends(_account_caller)) -> Principal:
        check_issuer_limit(request, principal, filters_issuers=filters_issuers)
        require_scope(principal, resource, action)
        return principal

    return dependency
