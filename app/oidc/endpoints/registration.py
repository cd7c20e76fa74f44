"""Dynamic client registration (RFC 7591) at `/{issuer}/register` and its management (RFC 7592) at
`/{issuer}/register/{client_id}` with the registration access token, plus RFC 8414 metadata at the
path-insertion address `{AUTHPI_PUBLIC_URL}/.well-known/oauth-authorization-server/{issuer_id}`
(what strict clients such as MCP's derive from an issuer URL with a path).

Off unless the issuer's `settings.security.client_registration` is `"open"` or `"token"` (the rules
are in app.client.registration). Registrations are counted per client address and issuer in the
runtime kit's shared throttle store (`AUTHPI_REGISTRATION_RATE_LIMIT` per
`AUTHPI_REGISTRATION_WINDOW_SECONDS`), successful or not.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from app.client import registration as reg
from app.core.ids import now_ms
from app.core.responses import ErrorBody
from app.models.client import Client
from app.models.issuer import Issuer
from app.oidc.endpoints.discovery import openid_configuration
from app.oidc.errors import NO_STORE, issuer_not_found
from app.oidc.openapi import OAuthErrorBody, ProviderMetadata
from app.oidc.runtime import get_runtime, key_set
from app.runtime.address import throttle_key
from app.signing_key.cache import KeySet

router = APIRouter()
MAX_BODY = 16 * 1024


class RegisteredClient(BaseModel):
    """RFC 7591 §3.2.1 / RFC 7592 §3: the client's metadata as registered."""

    model_config = ConfigDict(extra="allow")

    client_id: str
    client_id_issued_at: int
    registration_client_uri: str
    redirect_uris: list[str]
    grant_types: list[str]
    response_types: list[str]
    token_endpoint_auth_method: str
    application_type: str
    client_name: str
    scope: str
    logo_uri: str | None = None


class RegistrationCreated(RegisteredClient):
    """The registration answer: the secret (confidential clients) and the registration access
    token, shown this once."""

    client_secret: str | None = None
    client_secret_expires_at: int | None = None
    registration_access_token: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "invalid_redirect_uri or invalid_client_metadata"},
    401: {"model": OAuthErrorBody, "description": "A missing or wrong initial or registration access "
                                                  "token (invalid_token)"},
    403: {"model": OAuthErrorBody, "description": "Registration is not enabled for this issuer"},
    404: {"model": ErrorBody, "description": "No such issuer"},
    429: {"model": OAuthErrorBody, "description": "Too many registrations from this address"},
}
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["redirect_uris"], "properties": {
        "redirect_uris": {"type": "array", "items": {"type": "string"}},
        "token_endpoint_auth_method": {"type": "string",
                                       "enum": ["client_secret_basic", "client_secret_post", "none"]},
        "grant_types": {"type": "array", "items": {"type": "string",
                                                   "enum": ["authorization_code", "refresh_token"]}},
        "response_types": {"type": "array", "items": {"type": "string", "enum": ["code"]}},
        "application_type": {"type": "string", "enum": ["web", "native"]},
        "client_name": {"type": "string"}, "logo_uri": {"type": "string"}, "scope": {"type": "string"},
    }}}}}}


def _error(status: int, error: str, description: str, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _unauthorized(description: str) -> JSONResponse:
    return _error(401, "invalid_token", description, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _out(keys: KeySet, client: Client) -> RegisteredClient:
    settings = client.settings or {}
    oid = settings.get("openid") or {}
    return RegisteredClient(
        client_id=client.id, client_id_issued_at=client.created_at // 1000,
        registration_client_uri=f"{keys.issuer_url}/register/{client.id}",
        redirect_uris=list(oid.get("redirect_uris") or []), grant_types=list(oid.get("grant_types") or []),
        response_types=["code"],
        token_endpoint_auth_method=oid.get("token_endpoint_auth_method") or "client_secret_basic",
        application_type=oid.get("application_type") or "web", client_name=client.name,
        scope=" ".join(settings.get("scopes") or []), logo_uri=client.logo_url)


def _json(model: RegisteredClient, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(exclude_none=True), status_code=status, headers=NO_STORE)


async def _read_json(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise reg.RegistrationError("invalid_client_metadata", "The body must be application/json")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise reg.RegistrationError("invalid_client_metadata", "The body is too large")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise reg.RegistrationError("invalid_client_metadata", "The body is not valid JSON") from exc


async def _issuer(session: Any, keys: KeySet) -> Issuer | None:
    return await session.scalar(select(Issuer).where(
        Issuer.id == keys.issuer_id, Issuer.account_id == keys.account_id, Issuer.status != "deleted"))


async def _over_limit(request: Request, issuer_id: str) -> int | None:
    """Seconds to wait when this address has registered too often at this issuer; counts this one."""
    rt = get_runtime(request)
    settings = request.app.state.settings
    address = throttle_key(rt.address.of_scope(request.scope))
    counter = f"r:registration:{issuer_id}:{address}"
    now = now_ms()
    counts = await rt.throttle.store.incr([counter], now, settings.registration_window_seconds * 1000)
    used, ends = counts[counter]
    if used > settings.registration_rate_limit:
        return max(1, -(-(ends - now) // 1000))
    return None


@router.post("/{issuer_id}/register", status_code=201, response_model=RegistrationCreated,
             responses=_ERRORS, openapi_extra=_BODY)
async def register(issuer_id: str, request: Request) -> Response:
    """Register a client (RFC 7591), when the issuer allows it."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    server_key = request.app.state.secret_key
    async with request.app.state.db.unit_of_work() as session:
        issuer = await _issuer(session, keys)
        mode = reg.registration_mode(issuer) if issuer is not None else None
        if issuer is None or mode is None:
            return _error(403, "access_denied", "Dynamic client registration is not enabled here")
        wait = await _over_limit(request, issuer_id)
        if wait is not None:
            return _error(429, "temporarily_unavailable", "Too many registrations; try again later",
                          {"Retry-After": str(wait)})
        presented = _bearer(request)
        if mode == "token" and presented is None:
            return _unauthorized("An initial access token is required to register")
        try:
            meta, scopes = reg.parse_metadata(await _read_json(request), list(issuer.available_scopes or []))
        except reg.RegistrationError as exc:
            return _error(400, exc.error, exc.description)
        auth: dict[str, Any] = {"type": "anonymous",
                                "ip": get_runtime(request).address.of_scope(request.scope)}
        initial = None
        if mode == "token":
            # Consumed only by a registration that succeeds (refusals above change nothing).
            initial = await reg.consume_registration_token(session, server_key, issuer, presented)
            if initial is None:
                return _unauthorized("A valid initial access token is required to register")
            auth["registration_token_id"] = initial.id
        client, secret, access_token = await reg.register(session, server_key, issuer, meta, scopes,
                                                          auth=auth)
        if initial is not None:
            initial.client_id = client.id
        out = RegistrationCreated(**_out(keys, client).model_dump(), registration_access_token=access_token,
                                  client_secret=secret, client_secret_expires_at=0 if secret else None)
    return _json(out, 201)


async def _managed(request: Request, issuer_id: str, client_id: str, session: Any
                   ) -> tuple[KeySet, Issuer, Client] | Response:
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    issuer = await _issuer(session, keys)
    if issuer is None:
        return issuer_not_found()
    client = await reg.registered_client(session, request.app.state.secret_key, issuer, client_id,
                                         _bearer(request))
    if client is None:
        return _unauthorized("A valid registration access token for this client is required")
    return keys, issuer, client


def _client_auth(client: Client) -> dict[str, Any]:
    return {"type": "client", "client_id": client.id}


@router.get("/{issuer_id}/register/{client_id}", response_model=RegisteredClient, responses=_ERRORS)
async def read_registration(issuer_id: str, client_id: str, request: Request) -> Response:
    """The client's registered metadata (RFC 7592 §2.1), with its registration access token."""
    async with request.app.state.db.unit_of_work() as session:
        found = await _managed(request, issuer_id, client_id, session)
        if isinstance(found, Response):
            return found
        keys, _, client = found
        out = _out(keys, client)
    return _json(out)


@router.put("/{issuer_id}/register/{client_id}", response_model=RegisteredClient, responses=_ERRORS,
            openapi_extra=_BODY)
async def update_registration(issuer_id: str, client_id: str, request: Request) -> Response:
    """Replace the client's metadata (RFC 7592 §2.2); the same rules as registration."""
    async with request.app.state.db.unit_of_work() as session:
        found = await _managed(request, issuer_id, client_id, session)
        if isinstance(found, Response):
            return found
        keys, issuer, client = found
        try:
            body = await _read_json(request)
            if isinstance(body, dict) and body.get("client_id") not in (None, client.id):
                raise reg.RegistrationError("invalid_client_metadata", "client_id does not match")
            meta, scopes = reg.parse_metadata(body, list(issuer.available_scopes or []))
            client = await reg.update_registration(session, client, meta, scopes, auth=_client_auth(client))
        except reg.RegistrationError as exc:
            return _error(400, exc.error, exc.description)
        out = _out(keys, client)
    return _json(out)


@router.delete("/{issuer_id}/register/{client_id}", status_code=204, response_class=Response,
               responses=_ERRORS)
async def delete_registration(issuer_id: str, client_id: str, request: Request) -> Response:
    """Deregister the client (RFC 7592 §2.3): it is deleted and its token stops working."""
    async with request.app.state.db.unit_of_work() as session:
        found = await _managed(request, issuer_id, client_id, session)
        if isinstance(found, Response):
            return found
        await reg.delete_registration(session, found[2], auth=_client_auth(found[2]))
    return Response(status_code=204, headers=NO_STORE)


@router.get("/.well-known/oauth-authorization-server/{issuer_id}", response_model=ProviderMetadata,
            responses={404: {"model": ErrorBody, "description": "No such issuer"}})
async def oauth_metadata_path_insertion(issuer_id: str, request: Request) -> Response:
    """RFC 8414 §3.1: the issuer's metadata at the path-insertion address (the same document)."""
    return await openid_configuration(issuer_id, request)
