"""Dynamic client registration (RFC 7591) and its management (RFC 7592), the resource side.

An issuer turns registration on with `settings.security.client_registration`: `"open"` (anyone
may register) or `"token"` (an initial access token from
`POST {I}/registration-tokens` is required, single use). Registration must not open a door:
registered clients are always `type: "third_party"`, use only `authorization_code` and
`refresh_token` (PKCE is required for every client anyway), ask only for the issuer's scopes,
and their redirect URIs pass the same checks as an admin-created client's. Each one is a normal
client (listed, `client.created` recorded) whose `settings.openid.registration` is `"dynamic"`,
and gets a registration access token (stored as an HMAC) to read, update or delete itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.client.schemas import (
    OIDC_SCOPES,
    AuthMethod,
    ClientCreate,
    ClientSettings,
    ClientUpdate,
    OpenIdSettings,
    RedirectUri,
)
from app.client.service import create_client, delete_client, update_client
from app.core.crypto import constant_time_equals, generate_secret, hmac_sha256
from app.core.ids import new_id, now_ms
from app.core.validation import Url
from app.events.service import record
from app.issuer.schemas import REGISTRATION_MODES
from app.models.client import Client
from app.models.client_registration import ClientRegistration
from app.models.issuer import Issuer
from app.models.registration_token import RegistrationToken

DYNAMIC = "dynamic"
DEFAULT_NAME = "Dynamically registered client"


def registration_mode(issuer: Issuer) -> str | None:
    """"open", "token", or None (off, the default)."""
    security = (issuer.settings or {}).get("security") or {}
    mode = security.get("client_registration") if isinstance(security, dict) else None
    return mode if mode in REGISTRATION_MODES else None


class RegistrationError(Exception):
    """An RFC 7591 §3.2.2 error: `invalid_redirect_uri` or `invalid_client_metadata` (400)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class ClientMetadata(BaseModel):
    """The registration request (RFC 7591 §2). Unknown metadata is ignored, as §2 allows, and is
    never echoed back."""

    model_config = ConfigDict(extra="ignore")

    redirect_uris: Annotated[list[RedirectUri], Field(min_length=1, max_length=20)]
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    grant_types: Annotated[list[Literal["authorization_code", "refresh_token"]],
                           Field(min_length=1, max_length=2)] = ["authorization_code"]
    response_types: Annotated[list[Literal["code"]], Field(min_length=1, max_length=1)] = ["code"]
    application_type: Literal["web", "native"] = "web"
    client_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    logo_uri: Url | None = None
    scope: Annotated[str, Field(max_length=2048)] | None = None


def parse_metadata(body: Any, available_scopes: list[str]) -> tuple[ClientMetadata, list[str]]:
    """The validated metadata and the scopes to grant, or RegistrationError."""
    if not isinstance(body, dict):
        raise RegistrationError("invalid_client_metadata", "The body must be a JSON object")
    try:
        meta = ClientMetadata.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = f"{field}: {first['msg']}" if field else first["msg"]
        code = "invalid_redirect_uri" if field == "redirect_uris" else "invalid_client_metadata"
        raise RegistrationError(code, message) from exc
    if "refresh_token" in meta.grant_types and "authorization_code" not in meta.grant_types:
        raise RegistrationError("invalid_client_metadata",
                                "grant_types: refresh_token needs authorization_code")
    requested = [s for s in (meta.scope or "openid").split(" ") if s]
    allowed = set(OIDC_SCOPES) | set(available_scopes)
    outside = [s for s in requested if s not in allowed]
    if outside:
        raise RegistrationError("invalid_client_metadata",
                                f"scope: not available at this issuer: {' '.join(outside)}")
    return meta, list(dict.fromkeys(requested))


def _create_body(meta: ClientMetadata, scopes: list[str]) -> ClientCreate:
    confidential = meta.token_endpoint_auth_method != "none"
    return ClientCreate(
        name=meta.client_name or DEFAULT_NAME, type="third_party", confidential=confidential,
        logo_url=meta.logo_uri,
        settings=ClientSettings(scopes=scopes, openid=OpenIdSettings(
            application_type=meta.application_type, grant_types=list(dict.fromkeys(meta.grant_types)),
            redirect_uris=list(dict.fromkeys(meta.redirect_uris)),
            token_endpoint_auth_method=meta.token_endpoint_auth_method)))


def _token_hash(server_key: str, kind: str, token: str) -> str:
    return hmac_sha256(server_key, f"{kind}:{token}")


async def create_registration_token(session: AsyncSession, server_key: str, issuer: Issuer, *,
                                    ttl_seconds: int, auth: Any) -> tuple[RegistrationToken, str]:
    """A single-use initial access token; only its HMAC is kept."""
    raw = "rgi_" + generate_secret(32)
    now = now_ms()
    row = RegistrationToken(id=new_id("rgt"), account_id=issuer.account_id, issuer_id=issuer.id,
                            token_hash=_token_hash(server_key, "registration-initial", raw),
                            expires_at=now + ttl_seconds * 1000, created_at=now)
    session.add(row)
    await session.flush()
    await record(session, type="issuer.registration-token.created", account_id=issuer.account_id,
                 issuer_id=issuer.id,
                 subject={"type": "issuer", "id": issuer.id},
                 data={"registration_token": {"id": row.id, "expires_at": row.expires_at}}, auth=auth)
    return row, raw


async def consume_registration_token(session: AsyncSession, server_key: str, issuer: Issuer,
                                     raw: str | None) -> RegistrationToken | None:
    """The live, unused initial access token of this issuer, marked used; else None."""
    if not raw or len(raw) > 200:
        return None
    row = await session.scalar(
        update(RegistrationToken)
        .where(RegistrationToken.token_hash == _token_hash(server_key, "registration-initial", raw),
               RegistrationToken.issuer_id == issuer.id,
               RegistrationToken.account_id == issuer.account_id,
               RegistrationToken.used_at.is_(None), RegistrationToken.expires_at > now_ms())
        .values(used_at=now_ms()).returning(RegistrationToken))
    return row


async def register(session: AsyncSession, server_key: str, issuer: Issuer, meta: ClientMetadata,
                   scopes: list[str], *, auth: dict[str, Any]) -> tuple[Client, str | None, str]:
    """(client, its secret or None, its registration access token)."""
    client, secret = await create_client(session, issuer, _create_body(meta, scopes), auth,
                                         registration=DYNAMIC)
    access_token = "rat_" + generate_secret(32)
    session.add(ClientRegistration(
        client_id=client.id, account_id=issuer.account_id, issuer_id=issuer.id,
        access_token_hash=_token_hash(server_key, "registration-access", access_token),
        created_at=now_ms()))
    await session.flush()
    return client, secret, access_token


async def registered_client(session: AsyncSession, server_key: str, issuer: Issuer, client_id: str,
                            access_token: str | None) -> Client | None:
    """The dynamically registered, not deleted client whose registration access token this is."""
    if not access_token or len(access_token) > 200:
        return None
    row = await session.scalar(select(ClientRegistration).where(
        ClientRegistration.client_id == client_id, ClientRegistration.issuer_id == issuer.id,
        ClientRegistration.account_id == issuer.account_id))
    expected = _token_hash(server_key, "registration-access", access_token)
    if row is None or not constant_time_equals(row.access_token_hash, expected):
        return None
    return await session.scalar(select(Client).where(
        Client.id == client_id, Client.issuer_id == issuer.id, Client.account_id == issuer.account_id,
        Client.status != "deleted").with_for_update())


async def update_registration(session: AsyncSession, client: Client, meta: ClientMetadata,
                              scopes: list[str], *, auth: dict[str, Any]) -> Client:
    """RFC 7592 §2.2: the metadata is replaced. A client cannot change its confidentiality."""
    body = _create_body(meta, scopes)
    if body.confidential != client.confidential:
        raise RegistrationError("invalid_client_metadata",
                                "token_endpoint_auth_method cannot change between none and a secret")
    body.settings.openid.registration = DYNAMIC
    return await update_client(session, client, ClientUpdate(name=body.name, logo_url=body.logo_url,
                                                             settings=body.settings), auth)


async def delete_registration(session: AsyncSession, client: Client, *, auth: dict[str, Any]) -> None:
    await delete_client(session, client, auth)

