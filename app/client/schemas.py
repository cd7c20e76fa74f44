"""Client request bodies and the contract's Client / ClientListItem shapes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from app.core.responses import JsonDict, ResponseModel, with_fields
from app.core.scopes import scope_error
from app.core.validation import Description, Metadata, Name, StrictModel, Url
from app.models.client import Client

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_CODE)
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]", "localhost"})
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*$")


def _redirect_uri(value: str) -> str:
    """Absolute, no fragment (RFC 6749 §3.1.2); http(s) needs a host; private-use schemes allowed."""
    if "#" in value:
        raise ValueError("a redirect URI must not contain a fragment")
    if any(c.isspace() for c in value):
        raise ValueError("a redirect URI must not contain whitespace")
    parts = urlsplit(value)
    if not parts.scheme or not _SCHEME.match(parts.scheme):
        raise ValueError("a redirect URI must be absolute")
    if parts.scheme.lower() in ("http", "https"):
        if not parts.hostname:
            raise ValueError("an http(s) redirect URI needs a host")
    elif parts.scheme.lower() in ("javascript", "data", "file", "vbscript"):
        raise ValueError(f"the {parts.scheme} scheme is not allowed")
    return value


def _client_scope(value: str) -> str:
    if value in OIDC_SCOPES:
        return value
    err = scope_error(value)
    if err:
        raise ValueError(err)
    return value


RedirectUri = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_redirect_uri)]
ClientScope = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_client_scope)]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials",
                    "urn:ietf:params:oauth:grant-type:device_code"]
ApplicationType = Literal["web", "native", "spa", "service"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


class OpenIdSettings(StrictModel):
    application_type: ApplicationType = "web"
    grant_types: Annotated[list[GrantType], Field(max_length=4)] = ["authorization_code"]
    redirect_uris: Annotated[list[RedirectUri], Field(max_length=50)] = []
    post_logout_redirect_uris: Annotated[list[RedirectUri], Field(max_length=50)] = []
    token_endpoint_auth_method: AuthMethod | None = None
    response_signature_alg: Literal["RS256"] | None = None
    access_token_ttl: Annotated[int, Field(ge=60, le=86400)] | None = None
    refresh_token_ttl: Annotated[int, Field(ge=300, le=365 * 86400)] | None = None
    default_resources: Annotated[list[Url], Field(max_length=20)] = []
    # "dynamic" for a client made by RFC 7591 registration (set by the server, never by an admin).
    registration: Literal["dynamic"] | None = None
    # RFC 9449 metadata: every access token of this client is DPoP-bound (a proof is required).
    dpop_bound_access_tokens: bool = False
    # RFC 9126 metadata: /authorize accepts only a request_uri from /par for this client.
    require_pushed_authorization_requests: bool = False
    # OIDC Back-Channel Logout 1.0: where a signed logout_token is POSTed when a session ends.
    backchannel_logout_uri: Url | None = None


class ClientSettings(StrictModel):
    protocol: Literal["oidc"] = "oidc"
    scopes: Annotated[list[ClientScope], Field(max_length=256)] = ["openid"]
    openid: OpenIdSettings = OpenIdSettings()


ClientType = Annotated[str, StringConstraints(pattern=r"^(external|internal|first_party|third_party)$")]


def consistency_error(confidential: bool, settings: ClientSettings) -> tuple[str, str] | None:
    """(field, message) when the settings contradict each other or the client's confidentiality."""
    oid = settings.openid
    grants = set(oid.grant_types)
    g = "settings.openid.grant_types"
    if not grants:
        return g, "at least one grant type is required"
    if "authorization_code" in grants and not oid.redirect_uris:
        return "settings.openid.redirect_uris", "the authorization_code grant needs a redirect URI"
    if "refresh_token" in grants and not grants & {"authorization_code", DEVICE_CODE}:
        return g, "the refresh_token grant needs the authorization_code or device_code grant"
    if "client_credentials" in grants and not confidential:
        return g, "only confidential clients may use client_credentials"
    method = oid.token_endpoint_auth_method
    if method == "none" and confidential:
        return "settings.openid.token_endpoint_auth_method", "a confidential client must authenticate"
    if method not in (None, "none") and not confidential:
        return "settings.openid.token_endpoint_auth_method", "a public client uses none"
    return None


class ClientCreate(StrictModel):
    name: Name
    type: ClientType = "external"
    confidential: bool = True
    description: Description | None = None
    logo_url: Url | None = None
    settings: ClientSettings = ClientSettings(openid=OpenIdSettings(grant_types=["client_credentials"]))
    metadata: Metadata | None = None


class ClientUpdate(StrictModel):
    name: Name | None = None
    type: ClientType | None = None
    description: Description | None = None
    logo_url: Url | None = None
    settings: ClientSettings | None = None
    status: Literal["active", "blocked"] | None = None
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    metadata: Metadata | None = None


def settings_to_stored(settings: ClientSettings) -> dict[str, Any]:
    return settings.model_dump(mode="json", exclude_none=True)


class ClientOut(ResponseModel):
    """Never the secret: it is only in the create and rotate answers (ClientWithSecret)."""

    id: str
    issuer_id: str
    status: str
    type: str
    confidential: bool
    secret_rotated_at: int | None
    name: str
    description: str | None
    logo_url: str | None
    settings: JsonDict
    status_at: int | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None


class ClientListItem(ResponseModel):
    id: str
    issuer_id: str
    status: str
    type: str
    confidential: bool
    name: str
    description: str | None
    logo_url: str | None
    scopes: list[str]
    protocol: str
    application_type: str | None
    grant_types: list[str]
    redirect_uri_count: int
    configuration_indexed: bool = False
    secret_rotated_at: int | None
    status_at: int | None
    created_at: int
    updated_at: int | None
    # Beyond the SDK's list item (which ignores it): the settings as `clients.get` shows them, so a
    # list tells which clients dynamic registration made (`settings.openid.registration`).
    settings: JsonDict

    @classmethod
    def of(cls, row: Client) -> Self:
        settings = row.settings or {}
        oid = settings.get("openid") or {}
        return cls.model_validate(with_fields(
            row, scopes=list(settings.get("scopes") or []), protocol=settings.get("protocol", "oidc"),
            application_type=oid.get("application_type"), grant_types=list(oid.get("grant_types") or []),
            redirect_uri_count=len(oid.get("redirect_uris") or []), configuration_indexed=False))


class ClientCreated(ClientOut):
    """The create answer: a confidential client's secret, shown this once."""

    omit_if_none = ("secret",)

    secret: str | None = None


class ClientSecret(ResponseModel):
    """The secret rotation answer: the new secret, shown this once."""

    secret: str
