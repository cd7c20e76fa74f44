"""The configuration of an upstream identity provider: an issuer's auth method of type `oidc`,
`google`, `microsoft` or `github`, or an organization's OIDC connection (`sso.connection`).

Validated when stored, so a method the server cannot run is never accepted silently: `saml` and
`apple` are refused while enabled. Every URL the server itself fetches (discovery, JWKS, token,
userinfo, GitHub's API) passes the webhooks' private-address rules at configuration time, and again
at every fetch (the federation client's pinned transport); `AUTHPI_WEBHOOKS_ALLOW_PRIVATE` lifts both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.core.errors import ValidationFailed
from app.webhooks.url_safety import check_url

RUNNABLE_TYPES = ("oidc", "google", "microsoft", "github")
NOT_YET = {"saml": "SAML is not supported by this server yet",
           "apple": "Sign in with Apple is not supported by this server yet"}
SECRET = "client_secret"

# The presets' endpoints; each can be overridden in settings (tests point them at local fakes).
PRESETS: dict[str, dict[str, Any]] = {
    "google": {"issuer": "https://accounts.google.com", "scopes": ["openid", "email", "profile"]},
    "microsoft": {"issuer": "https://login.microsoftonline.com/{tenant}/v2.0",
                  "scopes": ["openid", "email", "profile"], "tenant": "common"},
    "github": {"authorization_endpoint": "https://github.com/login/oauth/authorize",
               "token_endpoint": "https://github.com/login/oauth/access_token",
               "api_base_url": "https://api.github.com", "scopes": ["read:user", "user:email"]},
    "oidc": {"scopes": ["openid", "email", "profile"]},
}
# Fetched by the server (checked against the private-address rules); the authorization endpoint is
# only where the browser goes, so it needs an http(s) URL and nothing more.
FETCHED_URLS = ("issuer", "token_endpoint", "jwks_uri", "userinfo_endpoint", "api_base_url")
URL_KEYS = (*FETCHED_URLS, "authorization_endpoint")
KNOWN_KEYS = {*URL_KEYS, "client_id", SECRET, "scopes", "trust_verified_email", "tenant", "redirect_uri",
              f"{SECRET}_set", "type"}
MAX_URL = 2048


@dataclass
class Provider:
    """What the federation client needs to run one upstream."""

    type: str
    client_id: str
    scopes: list[str]
    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    api_base_url: str | None = None
    # Link to an existing user by a verified email without asking for its own sign-in first.
    trust_verified_email: bool = False
    # Entra ID's `email` is whatever the tenant typed: never verified, whatever the token says.
    email_verifiable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_oidc(self) -> bool:
        return self.type != "github"


def provider_of(type: str, settings: dict[str, Any]) -> Provider:
    preset = PRESETS.get(type, {})
    merged = {**preset, **{k: v for k, v in settings.items() if v is not None}}
    issuer = merged.get("issuer")
    if type == "microsoft" and isinstance(issuer, str):
        issuer = issuer.replace("{tenant}", str(merged.get("tenant") or "common"))
    return Provider(type=type, client_id=str(merged.get("client_id") or ""),
                    scopes=list(merged.get("scopes") or []), issuer=issuer,
                    authorization_endpoint=merged.get("authorization_endpoint"),
                    token_endpoint=merged.get("token_endpoint"), jwks_uri=merged.get("jwks_uri"),
                    userinfo_endpoint=merged.get("userinfo_endpoint"),
                    api_base_url=merged.get("api_base_url"),
                    trust_verified_email=merged.get("trust_verified_email") is True,
                    email_verifiable=type != "microsoft")


def _url_shape(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_URL:
        raise ValidationFailed(f"{where} must be a URL of at most {MAX_URL} characters", field=where)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ValidationFailed(f"{where} must be an absolute http or https URL without credentials",
                               field=where)
    return value


async def validate(type: str, settings: dict[str, Any], *, enabled: bool, allow_private: bool,
                   prefix: str = "settings", has_secret: bool = False) -> dict[str, Any]:
    """The settings to store (without the secret and the read-only fields), or 422. A provider type
    the server cannot run is refused while enabled."""
    if type in NOT_YET:
        if enabled:
            raise ValidationFailed(f"{NOT_YET[type]}: it cannot be enabled", field="enabled",
                                   code="not_supported")
        return settings
    unknown = sorted(set(settings) - KNOWN_KEYS)
    if unknown:
        raise ValidationFailed(f"unknown setting {unknown[0]}", field=f"{prefix}.{unknown[0]}")
    out = {k: v for k, v in settings.items() if k not in (SECRET, f"{SECRET}_set", "redirect_uri")}
    for key in URL_KEYS:
        if key in out and out[key] is not None:
            _url_shape(out[key], f"{prefix}.{key}")
    client_id = out.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or not 1 <= len(client_id) <= 512):
        raise ValidationFailed("client_id must be a string of 1-512 characters", field=f"{prefix}.client_id")
    scopes = out.get("scopes")
    if scopes is not None and (not isinstance(scopes, list) or len(scopes) > 30 or not all(
            isinstance(s, str) and 0 < len(s) <= 200 and " " not in s for s in scopes)):
        raise ValidationFailed("scopes must be a list of at most 30 scope strings", field=f"{prefix}.scopes")
    if "trust_verified_email" in out and not isinstance(out["trust_verified_email"], bool):
        raise ValidationFailed("trust_verified_email must be a boolean",
                               field=f"{prefix}.trust_verified_email")
    if "tenant" in out and (not isinstance(out["tenant"], str) or not out["tenant"].replace("-", "")
                            .replace(".", "").isalnum()):
        raise ValidationFailed("tenant must be a tenant id or domain", field=f"{prefix}.tenant")
    if enabled:
        provider = provider_of(type, out)
        if not provider.client_id:
            raise ValidationFailed("client_id is required to enable this provider",
                                   field=f"{prefix}.client_id")
        if not has_secret:
            raise ValidationFailed("client_secret is required to enable this provider",
                                   field=f"{prefix}.{SECRET}")
        if provider.is_oidc and not provider.issuer:
            raise ValidationFailed("issuer is required (its discovery document configures the rest)",
                                   field=f"{prefix}.issuer")
        if not provider.is_oidc and not (provider.authorization_endpoint and provider.token_endpoint):
            raise ValidationFailed("authorization_endpoint and token_endpoint are required",
                                   field=f"{prefix}.token_endpoint")
        for key in FETCHED_URLS:
            value = getattr(provider, key)
            if value is None or "{" in value:
                continue
            problem = await check_url(value, allow_private=allow_private)
            if problem:
                raise ValidationFailed(f"{key} {problem}", field=f"{prefix}.{key}", code="unsafe_url")
    return out


def redirect_uri(public_url: str, issuer_id: str, source_id: str) -> str:
    """Where the upstream sends the browser back: one per auth method or organization."""
    return f"{public_url}/{issuer_id}/login/federated/{source_id}/callback"


SSO_KEYS = {"enabled", "sso_only", "connection"}


async def validate_sso(sso: dict[str, Any], *, allow_private: bool, has_secret: bool
                       ) -> tuple[dict[str, Any], str | None]:
    """An organization's `sso` to store, and the connection's new client secret if one was given.

    `{"enabled": bool, "sso_only": bool, "connection": {"type": "oidc", ...the oidc settings}}`.
    A SAML connection is refused (this server does not run SAML yet), and so is enabling SSO
    without a connection it can run."""
    unknown = sorted(set(sso) - SSO_KEYS)
    if unknown:
        raise ValidationFailed(f"unknown sso field {unknown[0]}", field=f"sso.{unknown[0]}")
    for flag in ("enabled", "sso_only"):
        if flag in sso and not isinstance(sso[flag], bool):
            raise ValidationFailed(f"sso.{flag} must be a boolean", field=f"sso.{flag}")
    enabled = sso.get("enabled") is True
    connection = sso.get("connection")
    if connection is None:
        if enabled or sso.get("sso_only") is True:
            raise ValidationFailed("sso.connection is required to enable SSO", field="sso.connection")
        return dict(sso), None
    if not isinstance(connection, dict):
        raise ValidationFailed("sso.connection must be an object", field="sso.connection")
    kind = connection.get("type")
    if kind == "saml":
        raise ValidationFailed("SAML connections are not supported by this server yet; use an OIDC "
                               "connection", field="sso.connection.type", code="not_supported")
    if kind != "oidc":
        raise ValidationFailed("sso.connection.type must be oidc", field="sso.connection.type")
    settings = {k: v for k, v in connection.items() if k != "type"}
    secret = settings.get(SECRET)
    if secret is not None and (not isinstance(secret, str) or not 1 <= len(secret) <= 1024):
        raise ValidationFailed(f"{SECRET} must be a string of 1-1024 characters",
                               field=f"sso.connection.{SECRET}")
    for key in ("trust_verified_email", "tenant"):
        if key in settings:
            raise ValidationFailed(f"{key} is not a connection setting", field=f"sso.connection.{key}")
    stored = await validate("oidc", settings, enabled=enabled, allow_private=allow_private,
                            prefix="sso.connection", has_secret=has_secret or secret is not None)
    return {**sso, "connection": {"type": "oidc", **stored}}, secret
