"""The relying-party side of federation, on authlib's OAuth 2 client (httpx): discovery, the
authorization URL (state, nonce, PKCE S256), the code exchange, the ID token's checks against the
upstream's JWKS, and GitHub's user and emails API.

Every request goes through the webhooks' guarded transport: each connection is made only to an
address that passed the private-address rules, unless AUTHPI_WEBHOOKS_ALLOW_PRIVATE lifts them.
No redirects are followed and no proxy is taken from the environment.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import authlib.deprecate
import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from app.identity.providers import Provider
from app.identity.service import Assertion
from app.webhooks.http import guarded_transport
from app.webhooks.url_safety import UnsafeTarget

with warnings.catch_warnings():
    # authlib prefers httpx2 and says so once at import; httpx is what this server runs on.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    # The httpx flavour authlib runs on (httpx2 where installed, e.g. by the MCP SDK; else httpx):
    # the guarded transport and the errors caught must be of the same one.
    from authlib.integrations.httpx_client._compat import httpx2 as authlib_httpx

TIMEOUT_SECONDS = 10.0
MAX_DOCUMENT = 256 * 1024
LEEWAY_SECONDS = 60
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


class UpstreamError(Exception):
    """The upstream could not be used or its answer failed a check; the message is safe to show."""


@dataclass
class Endpoints:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    issuer: str | None = None


def _client(provider: Provider, *, allow_private: bool, secret: str | None = None,
            redirect_uri: str | None = None) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(client_id=provider.client_id, client_secret=secret,
                             scope=" ".join(provider.scopes), redirect_uri=redirect_uri,
                             code_challenge_method="S256",
                             transport=guarded_transport(allow_private=allow_private,
                                                         httpx_module=authlib_httpx),
                             follow_redirects=False, trust_env=False, timeout=TIMEOUT_SECONDS)


async def _get_json(http: AsyncOAuth2Client, url: str, **kwargs: Any) -> Any:
    try:
        # The client's own token is never sent here: discovery and JWKS are public, and GitHub's
        # API gets its bearer token in the headers given.
        response = await http.request("GET", url, withhold_token=True, **kwargs)
    except UnsafeTarget as exc:
        raise UpstreamError(f"refused to fetch {url}: {exc}") from exc
    except (httpx.HTTPError, authlib_httpx.HTTPError) as exc:
        raise UpstreamError(f"could not fetch {url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise UpstreamError(f"{url} answered {response.status_code}")
    if len(response.content) > MAX_DOCUMENT:
        raise UpstreamError(f"{url} answered a document too large")
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise UpstreamError(f"{url} did not answer JSON") from exc


async def endpoints(provider: Provider, *, allow_private: bool) -> Endpoints:
    """The upstream's endpoints: its discovery document for OIDC (whose `issuer` must be the one
    configured), with the settings' overrides on top; the settings alone for GitHub."""
    if not provider.is_oidc:
        if not provider.authorization_endpoint or not provider.token_endpoint:
            raise UpstreamError("the provider has no authorization or token endpoint")
        return Endpoints(provider.authorization_endpoint, provider.token_endpoint)
    issuer = str(provider.issuer).rstrip("/")
    async with _client(provider, allow_private=allow_private) as http:
        document = await _get_json(http, f"{issuer}/.well-known/openid-configuration")
    if not isinstance(document, dict):
        raise UpstreamError("the discovery document is not an object")
    declared = str(document.get("issuer") or "").rstrip("/")
    # Entra ID's multi-tenant discovery declares a template, checked per token against its `tid`.
    if declared != issuer and not (provider.type == "microsoft" and "{tenantid}" in declared):
        raise UpstreamError("the discovery document names another issuer")

    def pick(name: str) -> str | None:
        value = getattr(provider, name) or document.get(name)
        return value if isinstance(value, str) else None

    authorization, token = pick("authorization_endpoint"), pick("token_endpoint")
    if not authorization or not token or not pick("jwks_uri"):
        raise UpstreamError("the discovery document lacks an endpoint")
    return Endpoints(authorization, token, pick("jwks_uri"), pick("userinfo_endpoint"), declared)


def authorization_url(provider: Provider, where: Endpoints, *, redirect_uri: str, state: str,
                      nonce: str, code_verifier: str) -> str:
    client = _client(provider, allow_private=True, redirect_uri=redirect_uri)
    extra = {"nonce": nonce} if provider.is_oidc else {}
    url, _ = client.create_authorization_url(where.authorization_endpoint, state=state,
                                             code_verifier=code_verifier, **extra)
    return str(url)


async def exchange(provider: Provider, where: Endpoints, *, secret: str, redirect_uri: str, code: str,
                   code_verifier: str, nonce: str, allow_private: bool) -> Assertion:
    """Redeem the code (with the PKCE verifier) and check what comes back."""
    async with _client(provider, allow_private=allow_private, secret=secret,
                       redirect_uri=redirect_uri) as client:
        try:
            token = await client.fetch_token(where.token_endpoint, grant_type="authorization_code", code=code,
                                             code_verifier=code_verifier,
                                             headers={"Accept": "application/json"})
        except UnsafeTarget as exc:
            raise UpstreamError(f"refused to reach the token endpoint: {exc}") from exc
        except Exception as exc:  # authlib raises OAuthError, httpx errors, or ValueError on bad JSON
            raise UpstreamError(f"the code exchange failed: {type(exc).__name__}: {exc}"[:300]) from exc
        if provider.is_oidc:
            if not isinstance(token.get("id_token"), str):
                raise UpstreamError("the token response has no ID token")
            jwks = await _get_json(client, str(where.jwks_uri))
            claims = verify_id_token(token["id_token"], jwks, issuer=str(where.issuer or provider.issuer),
                                     client_id=provider.client_id, nonce=nonce)
            return _assertion(claims, provider)
        return await _github(client, provider, token)


def verify_id_token(id_token: str, jwks: Any, *, issuer: str, client_id: str, nonce: str) -> dict[str, Any]:
    """Signature against the upstream's JWKS, then `iss`, `aud` (and `azp`), `exp`, `iat`, `nonce`."""
    try:
        keys = KeySet.import_key_set(jwks)
        token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise UpstreamError(f"the ID token's signature does not verify ({type(exc).__name__})") from exc
    claims = dict(token.claims)
    expected_issuer = issuer
    if "{tenantid}" in issuer:
        expected_issuer = issuer.replace("{tenantid}", str(claims.get("tid") or ""))
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise UpstreamError("the ID token's azp is not this client")
    registry = JWTClaimsRegistry(leeway=LEEWAY_SECONDS, iss={"essential": True, "value": expected_issuer},
                                 aud={"essential": True, "value": client_id}, sub={"essential": True},
                                 exp={"essential": True}, nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise UpstreamError(f"the ID token failed its checks ({exc.error}: {exc.description})"[:300]) from exc
    return claims


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _assertion(claims: dict[str, Any], provider: Provider) -> Assertion:
    email = _text(claims.get("email"))
    verified = claims.get("email_verified") is True and provider.email_verifiable
    return Assertion(subject=str(claims["sub"])[:255], email=email.lower() if email else None,
                     email_verified=verified, name=_text(claims.get("name")),
                     given_name=_text(claims.get("given_name")), family_name=_text(claims.get("family_name")))


async def _github(client: AsyncOAuth2Client, provider: Provider, token: dict[str, Any]) -> Assertion:
    """GitHub has no ID token: the user comes from `GET /user`, the email from `GET /user/emails`
    (the primary one, and only if GitHub verified it)."""
    base = str(provider.api_base_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token.get('access_token')}",
               "Accept": "application/vnd.github+json"}
    user = await _get_json(client, f"{base}/user", headers=headers)
    emails = await _get_json(client, f"{base}/user/emails", headers=headers)
    if not isinstance(user, dict) or user.get("id") is None:
        raise UpstreamError("GitHub's user has no id")
    primary = next((e for e in emails if isinstance(e, dict) and e.get("primary")), None) \
        if isinstance(emails, list) else None
    email = _text(primary.get("email")) if primary else None
    return Assertion(subject=str(user["id"]), email=email.lower() if email else None,
                     email_verified=bool(primary and primary.get("verified") is True),
                     name=_text(user.get("name")) or _text(user.get("login")))
