"""OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) and the JWKS. Advertise only what works."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.oidc import openapi as docs
from app.oidc.errors import issuer_not_found
from app.oidc.runtime import key_set

router = APIRouter()

_CACHE = "public, max-age=60"


async def _published(request: Request, issuer_id: str, body: str, media_type: str) -> Response:
    """One of the issuer's pre-rendered public documents (from the key-set cache)."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    return Response(getattr(keys, body), media_type=media_type,
                    headers={"Cache-Control": _CACHE, "Access-Control-Allow-Origin": "*"})


@router.get("/{issuer_id}/.well-known/openid-configuration", **docs.DISCOVERY)
async def openid_configuration(issuer_id: str, request: Request) -> Response:
    """The issuer's OpenID Provider metadata."""
    return await _published(request, issuer_id, "discovery_body", "application/json")


@router.get("/{issuer_id}/.well-known/oauth-authorization-server", **docs.DISCOVERY)
async def oauth_metadata(issuer_id: str, request: Request) -> Response:
    """RFC 8414 metadata (the same document)."""
    return await openid_configuration(issuer_id, request)


@router.get("/{issuer_id}/jwks.json", **docs.JWKS)
async def jwks(issuer_id: str, request: Request) -> Response:
    """The issuer's public keys, including retired ones whose tokens may still be live."""
    return await _published(request, issuer_id, "jwks_body", "application/jwk-set+json")
