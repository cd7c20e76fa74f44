"""OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) and the JWKS. Advertise only what works."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.hosted.i18n import CATALOGS
from app.hosted.policy import ACR_VALUES
from app.oidc.errors import issuer_not_found
from app.oidc.keys import ID_TOKEN_ALG
from app.oidc.runtime import key_set

router = APIRouter()

STANDARD_SCOPES = ["openid", "profile", "email", "offline_access"]
CLAIMS = ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "email",
          "email_verified", "name", "given_name", "family_name", "preferred_username", "picture",
          "locale", "updated_at", "org_id", "organizations"]
CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]
_CACHE = "public, max-age=60"


def discovery_document(issuer_url: str, available_scopes: list[str]) -> dict[str, Any]:
    return {
        "issuer": issuer_url,
        "authorization_endpoint": f"{issuer_url}/authorize",
        "token_endpoint": f"{issuer_url}/token",
        "userinfo_endpoint": f"{issuer_url}/userinfo",
        "jwks_uri": f"{issuer_url}/jwks.json",
        "revocation_endpoint": f"{issuer_url}/revoke",
        "introspection_endpoint": f"{issuer_url}/introspect",
        "end_session_endpoint": f"{issuer_url}/logout",
        "scopes_supported": STANDARD_SCOPES + [s for s in available_scopes if s not in STANDARD_SCOPES],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "acr_values_supported": ACR_VALUES,
        "ui_locales_supported": sorted(CATALOGS),
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "require_pushed_authorization_requests": False,
    }


@router.get("/{issuer_id}/.well-known/openid-configuration", include_in_schema=False)
async def openid_configuration(issuer_id: str, request: Request) -> Response:
    """The issuer's OpenID Provider metadata."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    return Response(keys.discovery_body, media_type="application/json",
                    headers={"Cache-Control": _CACHE, "Access-Control-Allow-Origin": "*"})


@router.get("/{issuer_id}/.well-known/oauth-authorization-server", include_in_schema=False)
async def oauth_metadata(issuer_id: str, request: Request) -> Response:
    """RFC 8414 metadata (the same document)."""
    return await openid_configuration(issuer_id, request)


@router.get("/{issuer_id}/jwks.json", include_in_schema=False)
async def jwks(issuer_id: str, request: Request) -> Response:
    """The issuer's public keys, including retired ones whose tokens may still be live."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    return Response(keys.jwks_body, media_type="application/jwk-set+json",
                    headers={"Cache-Control": _CACHE, "Access-Control-Allow-Origin": "*"})
