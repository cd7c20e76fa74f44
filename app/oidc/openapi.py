"""What the OpenAPI document says about each issuer's OpenID Provider endpoints.

These endpoints read their forms and query strings themselves (RFC 6749 form encoding, repeated
parameters), so their requests are documented here by hand; their answers are the models below.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from app.core.responses import ErrorBody


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2 / RFC 6750 §3.1."""

    model_config = ConfigDict(extra="allow")

    error: str
    error_description: str | None = None


class TokenResponse(BaseModel):
    """RFC 6749 §5.1; `id_token` for openid grants, `refresh_token` with offline_access."""

    model_config = ConfigDict(extra="allow")

    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None


class ProviderMetadata(BaseModel):
    """OpenID Connect Discovery 1.0 / RFC 8414 metadata."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]


class Jwks(BaseModel):
    """RFC 7517 JWK Set: public keys only."""

    model_config = ConfigDict(extra="allow")

    keys: list[dict[str, Any]]


class UserInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    sub: str
    organizations: list[dict[str, Any]]


class Introspection(BaseModel):
    """RFC 7662: `active`, and the token's claims when it is active."""

    model_config = ConfigDict(extra="allow")

    active: bool


def _form(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": schema}}}}


def _query(*names: str) -> dict[str, Any]:
    return {"parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                           for n in names]}


_S = {"type": "string"}
_CLIENT = {"client_id": _S, "client_secret": _S}
_HTML = {"text/html": {"schema": {"type": "string"}}}
# Any route: the request limits (413, 431) and a database outage (503), in the contract's error body.
# JSON even on the HTML pages' routes, so the content is given rather than `model`.
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_ALWAYS: dict[int | str, dict[str, Any]] = {
    413: {"content": _ERROR_JSON, "description": "The request body is too large"},
    431: {"content": _ERROR_JSON, "description": "The request headers are too large"},
    503: {"content": _ERROR_JSON, "description": "The database is unavailable; retry later"},
}
_NOT_FOUND_JSON = {404: {"model": ErrorBody, "description": "No such issuer"}, **_ALWAYS}
_NOT_FOUND_HTML = {404: {"description": "No such issuer (an HTML page)", "content": _HTML}, **_ALWAYS}
_OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "OAuth error (invalid_request, invalid_grant, ...)"},
    401: {"model": OAuthErrorBody, "description": "Client authentication failed (invalid_client)"},
    429: {"model": OAuthErrorBody, "description": "Too many failed attempts (temporarily_unavailable)"},
    **_NOT_FOUND_JSON,
}
_REDIRECT = {"description": "Redirect (to the client, or to the hosted login)",
             "headers": {"Location": {"schema": {"type": "string"}}}}
# A refused parameter is an error page; input refused at the edge (a NUL, an oversize value) is
# answered before the page exists, as a JSON error.
_PAGE_ERRORS = {400: {"description": "An error page, or input refused at the edge (JSON)",
                      "content": {**_HTML, "application/json": {"schema": {"type": "object"}}}},
                **_NOT_FOUND_HTML}

_PUBLIC_CACHE = {"Cache-Control": {"schema": {"type": "string"}}}

DISCOVERY: dict[str, Any] = {"response_model": ProviderMetadata, "responses": {**_NOT_FOUND_JSON}}
JWKS: dict[str, Any] = {"responses": {
    200: {"description": "The issuer's JWK Set", "headers": _PUBLIC_CACHE,
          "content": {"application/jwk-set+json": {"schema": Jwks.model_json_schema()}}},
    **_NOT_FOUND_JSON}}
TOKEN: dict[str, Any] = {
    "response_model": TokenResponse, "responses": _OAUTH_ERRORS,
    "openapi_extra": _form({"grant_type": {"type": "string", "enum": [
        "authorization_code", "refresh_token", "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:device_code"]},
        "device_code": _S,
        "subject_token": _S, "subject_token_type": _S, "requested_token_type": _S,
        "code": _S, "redirect_uri": _S, "code_verifier": _S, "refresh_token": _S, "scope": _S,
        "resource": _S, **_CLIENT}, ["grant_type"])}
REVOKE: dict[str, Any] = {
    "response_class": Response,
    "responses": {200: {"description": "Revoked, or not a token of this client (RFC 7009 §2.2)",
                        "content": {}}, **_OAUTH_ERRORS},
    "openapi_extra": _form({"token": _S, "token_type_hint": _S, **_CLIENT}, ["token"])}
INTROSPECT: dict[str, Any] = {
    "response_model": Introspection, "responses": _OAUTH_ERRORS,
    "openapi_extra": _form({"token": _S, "token_type_hint": _S, **_CLIENT}, ["token"])}
class PushedRequestCreated(BaseModel):
    """RFC 9126 §2.2."""

    request_uri: str
    expires_in: int


PAR: dict[str, Any] = {
    "response_model": PushedRequestCreated, "responses": _OAUTH_ERRORS,
    "openapi_extra": _form({"response_type": _S, "redirect_uri": _S, "scope": _S, "state": _S,
                            "nonce": _S, "code_challenge": _S, "code_challenge_method": _S,
                            "prompt": _S, "max_age": _S, "login_hint": _S, "org": _S, "resource": _S,
                            **_CLIENT}, ["response_type", "redirect_uri"])}
USERINFO: dict[str, Any] = {
    "response_model": UserInfo,
    "responses": {401: {"model": OAuthErrorBody, "description": "A valid Bearer access token is required",
                        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
                  **_NOT_FOUND_JSON}}
AUTHORIZE: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {302: _REDIRECT, **_PAGE_ERRORS},
    "openapi_extra": _query("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                            "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint",
                            "org", "resource", "request_uri")}
LOGIN_PAGE: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {200: {"description": "The sign-in form", "content": _HTML}, **_PAGE_ERRORS},
    "openapi_extra": _query("return", "hint")}
LOGIN_SUBMIT: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {303: _REDIRECT, 200: {"description": "The form again", "content": _HTML},
                  401: {"description": "Wrong username or password (the form again)", "content": _HTML},
                  403: {"description": "The form expired (CSRF or Origin)", "content": _HTML},
                  429: {"description": "Too many failed attempts", "content": _HTML}, **_PAGE_ERRORS},
    "openapi_extra": _form({"return": _S, "csrf": _S, "username": _S, "password": _S})}
LOGOUT: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {200: {"description": "Signed out (an HTML page)", "content": _HTML}, 302: _REDIRECT,
                  **_PAGE_ERRORS},
    "openapi_extra": _query("id_token_hint", "client_id", "post_logout_redirect_uri", "state")}
