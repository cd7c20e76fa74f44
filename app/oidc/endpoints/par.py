"""POST /{issuer}/par (RFC 9126): push an authorization request, get a single-use request_uri."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.oidc import openapi as docs
from app.oidc import par
from app.oidc.client_auth import authenticate_client
from app.oidc.endpoints.authorize import oversize, redirect_uri_matches, validate_request
from app.oidc.endpoints.token import read_form
from app.oidc.errors import NO_STORE, InvalidRequest, OAuthError, issuer_not_found
from app.oidc.runtime import get_runtime, key_set

router = APIRouter()
# Client authentication travels with the push, never into the stored request.
_NOT_STORED = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


@router.post("/{issuer_id}/par", status_code=201, **docs.PAR)
async def push_authorization_request(issuer_id: str, request: Request) -> Response:
    """Validate and store an authorization request; `/authorize` then takes its request_uri once."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    rt = get_runtime(request)
    try:
        form = await read_form(request)
        client = await authenticate_client(request, issuer_id, form.as_dict())
        params = dict(form.as_dict())
        if "request_uri" in params:
            raise InvalidRequest("request_uri cannot be pushed")
        params["client_id"] = client.id
        if not redirect_uri_matches(client.redirect_uris, params.get("redirect_uri", "")):
            raise InvalidRequest("The redirect URI is not registered for this client")
        resources = form.getlist("resource")
        validate_request(client, params, resources)
        pairs = [(k, v) for k, v in params.items() if k not in _NOT_STORED]
        pairs += [("resource", r) for r in resources]
        if oversize(b"", pairs):
            raise InvalidRequest("The authorization request is too large")
        ttl = request.app.state.settings.par_request_uri_ttl_seconds
        async with request.app.state.db.unit_of_work() as session:
            request_uri = await par.push(session, rt.server_key, account_id=keys.account_id,
                                         issuer_id=issuer_id, client_id=client.id, pairs=pairs,
                                         ttl_seconds=ttl)
        return JSONResponse({"request_uri": request_uri, "expires_in": ttl}, status_code=201,
                            headers=NO_STORE)
    except OAuthError as exc:
        return exc.response()
