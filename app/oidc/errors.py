"""OAuth errors are their own family (RFC 6749 §5.2, RFC 6750 §3), rendered as the RFCs say."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Scope

from app.core.errors import RETRY_AFTER_SECONDS, ServiceUnavailable, unexpected_error

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str | None = None, *, status_code: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code, headers={**NO_STORE, **self.headers})


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str = "Client authentication failed", *, basic: bool = False) -> None:
        # RFC 6749 §5.2: a 401 answer to Basic carries the matching challenge.
        headers = {"WWW-Authenticate": 'Basic realm="authpi"'} if basic else {}
        super().__init__(description, headers=headers)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"


class AccessDenied(OAuthError):
    error = "access_denied"


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 429


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class InvalidToken(OAuthError):
    """RFC 6750 §3.1, for protected resources (userinfo)."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str = "The access token is invalid") -> None:
        super().__init__(description, headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'})


def unexpected_oauth_error(exc: BaseException) -> JSONResponse:
    """An exception nobody handled, in RFC 6749's shape: 503 `temporarily_unavailable` while the
    database is away (with Retry-After), else 500 `server_error` (logged, no detail)."""
    if isinstance(unexpected_error(exc), ServiceUnavailable):
        return TemporarilyUnavailable("The server is temporarily unavailable; retry shortly",
                                      status_code=503,
                                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)}).response()
    return ServerError("An internal error occurred", status_code=500).response()


def render_unexpected(scope: Scope, exc: BaseException) -> Response | None:
    """For the error boundary: the issuers' endpoints (/{issuer_id}/...) answer in OAuth's shape."""
    if scope.get("path", "").startswith("/i_"):
        return unexpected_oauth_error(exc)
    return None


def issuer_not_found() -> Response:
    return JSONResponse({"error": "not_found", "error_description": "The issuer was not found",
                         "retryable": False}, status_code=404)


def redirect_with(uri: str, params: dict[str, str]) -> RedirectResponse:
    """Append params to a (validated) redirect URI's query, keeping what it already has."""
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302,
                            headers=NO_STORE)


def error_redirect(redirect_uri: str, exc: OAuthError, *, state: str | None, iss: str) -> RedirectResponse:
    """RFC 6749 §4.1.2.1, with `iss` (RFC 9207) so the client can tell which issuer answered."""
    params = exc.body()
    if state is not None:
        params["state"] = state
    params["iss"] = iss
    return redirect_with(redirect_uri, params)
