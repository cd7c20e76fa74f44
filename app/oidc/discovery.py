"""The OpenID Provider metadata document (OIDC Discovery 1.0, RFC 8414). Advertise only what works."""

from __future__ import annotations

from typing import Any

from app.hosted.i18n import CATALOGS
from app.hosted.policy import ACR_VALUES
from app.issuer.schemas import REGISTRATION_MODES
from app.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS
from app.signing_key.service import ID_TOKEN_ALG

STANDARD_SCOPES = ["openid", "profile", "email", "offline_access"]
CLAIMS = ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "email",
          "email_verified", "name", "given_name", "family_name", "preferred_username", "picture",
          "locale", "updated_at", "org_id", "organizations"]
CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


def _registration_on(settings: dict[str, Any] | None) -> bool:
    security = (settings or {}).get("security")
    return isinstance(security, dict) and security.get("client_registration") in REGISTRATION_MODES


def discovery_document(issuer_url: str, available_scopes: list[str],
                       settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenID Provider metadata; RFC 8414 metadata is the same document (one set of facts)."""
    doc = {
        "issuer": issuer_url,
        "authorization_endpoint": f"{issuer_url}/authorize",
        "token_endpoint": f"{issuer_url}/token",
        "userinfo_endpoint": f"{issuer_url}/userinfo",
        "jwks_uri": f"{issuer_url}/jwks.json",
        "revocation_endpoint": f"{issuer_url}/revoke",
        "introspection_endpoint": f"{issuer_url}/introspect",
        "end_session_endpoint": f"{issuer_url}/logout",
        "device_authorization_endpoint": f"{issuer_url}/device_authorization",
        "scopes_supported": STANDARD_SCOPES + [s for s in available_scopes if s not in STANDARD_SCOPES],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:token-exchange",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
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
        "pushed_authorization_request_endpoint": f"{issuer_url}/par",
        "require_pushed_authorization_requests": False,
        "dpop_signing_alg_values_supported": DPOP_ALGORITHMS,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }
    if _registration_on(settings):
        doc["registration_endpoint"] = f"{issuer_url}/register"
    return doc
