"""POST /{issuer}/token (RFC 6749 §3.2): authorization_code, refresh_token, client_credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.oidc import dpop
from app.oidc import openapi as docs
from app.oidc.client_auth import agent_credentials, authenticate_client
from app.oidc.errors import (
    NO_STORE,
    InvalidRequest,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
    issuer_not_found,
)
from app.oidc.events import metered_occurrence
from app.oidc.grants import (
    authorization_code,
    client_credentials,
    device_code,
    hot,
    refresh_token,
    token_exchange,
)
from app.oidc.grants.common import Form
from app.oidc.runtime import get_runtime, key_set
from app.signing_key.cache import KeySet

router = APIRouter()
MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> Form:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest("The body must be application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequest("The body is too large")
    try:
        text = body.decode("utf-8")
        if "%" in text or "+" in text:
            pairs = parse_qsl(text, keep_blank_values=False, strict_parsing=False, max_num_fields=100)
        else:
            # The common case (no escapes): a plain split is several times cheaper than parse_qsl.
            fields = text.split("&")
            if len(fields) > 100:
                raise ValueError("too many fields")
            pairs = [(k, v) for k, _, v in (f.partition("=") for f in fields) if v]
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("The body is not a valid form") from exc
    return Form(pairs)


def token_response(body: dict[str, Any], headers: dict[str, str] = NO_STORE) -> Response:
    """200 with the token response as JSON (orjson: the same compact UTF-8 JSON as JSONResponse,
    for a fraction of json.dumps' cost), never cached (RFC 6749 §5.1)."""
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


async def _token_exchange(request: Request, keys: KeySet, form: Form) -> Response:
    creds = agent_credentials(request, form.as_dict())
    if creds is None:
        # Only agents act for users here; the client must not be a mere relying party.
        await authenticate_client(request, keys.issuer_id, form.as_dict())
        raise UnauthorizedClient("Only an agent may exchange a user's token")
    return token_response(await token_exchange.exchange(request, keys, creds, form))


async def _device_code(request: Request, keys: KeySet, form: Form) -> Response:
    # DPoP binds device-flow tokens as it binds every other grant's (a client may require it).
    proof = dpop.token_request_proof(request, keys.issuer_url + "/token")
    client = await authenticate_client(request, keys.issuer_id, form.as_dict())
    jkt = dpop.require_for(client.dpop_bound, proof)
    async with request.app.state.db.unit_of_work() as session:
        result = await device_code.redeem(session, keys, request.app.state.secret_key, client, form, jkt=jkt)
    if isinstance(result, OAuthError):  # after the commit of what polling writes
        raise result
    return token_response(result, {**NO_STORE, **dpop.checker(request.app).response_headers(proof)})


# Grants beyond RFC 6749's, each answering the whole request (client authentication included).
EXTENSION_GRANTS: dict[str, Callable[[Request, KeySet, Form], Awaitable[Response]]] = {
    token_exchange.GRANT_TYPE: _token_exchange,
    device_code.GRANT_TYPE: _device_code,
}


@router.post("/{issuer_id}/token", **docs.TOKEN)
async def token(issuer_id: str, request: Request) -> Response:
    """The token endpoint."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    rt = get_runtime(request)
    try:
        form = await read_form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required")
        if grant_type in EXTENSION_GRANTS:
            return await EXTENSION_GRANTS[grant_type](request, keys, form)
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise UnsupportedGrantType(f"Unsupported grant_type {grant_type}")
        # DPoP (RFC 9449): a proof binds the tokens issued to its key (app.oidc.dpop).
        proof = dpop.token_request_proof(request, keys.issuer_url + "/token")
        headers = {**NO_STORE, **dpop.checker(request.app).response_headers(proof)}
        if grant_type == "client_credentials":
            # Agents use their `agt_` id as client_id (a secret verifier, not a client).
            creds = agent_credentials(request, form.as_dict())
            if creds is not None:
                body = await client_credentials.agent_token(request, keys, creds, form,
                                                            proof.jkt if proof else None)
                return token_response(body, headers)
        client = await authenticate_client(request, issuer_id, form.as_dict())
        jkt = dpop.require_for(client.dpop_bound, proof)
        if grant_type == "client_credentials":
            body, claims = client_credentials.issue(keys, client, form, jkt)
            metered_occurrence(request.app, client,
                               {"jti": claims["jti"], "scope": claims["scope"], "exp": claims["exp"]},
                               type="machine.token.issued", account_id=keys.account_id,
                               issuer_id=issuer_id, client_id=client.id,
                               subject={"type": "client", "id": client.id},
                               auth={"type": "client", "client_id": client.id})
            return token_response(body, headers)
        code = grant_type == "authorization_code"
        # One statement on the token pool when everything needed for success holds; otherwise (or
        # without the pool) the ORM path, which decides the exact error and writes what it implies.
        pool = getattr(request.app.state, "token_pool", None)
        result = None
        if pool is not None:
            result = await (hot.exchange if code else hot.refresh)(pool, keys, rt.server_key, client, form,
                                                                   jkt=jkt)
        if result is None:
            handler = authorization_code.exchange if code else refresh_token.refresh
            async with request.app.state.db.unit_of_work() as session:
                result = await handler(session, keys, rt.server_key, client, form, jkt=jkt)
        # Errors that follow a write (code marked used, family revoked) are raised after commit.
        if isinstance(result, OAuthError):
            raise result
        return token_response(result, headers)
    except OAuthError as exc:
        return exc.response()
