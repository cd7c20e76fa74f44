"""The OpenAPI document itself: every answer described, errors with the contract's body, secrets only
in the create and rotate answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

SECRET_PROPERTIES = {"secret_plain", "token_plain", "secret", "codes", "backup_codes", "password",
                     "secret_hash", "password_hash", "client_secret"}
USER = "/v1/accounts/{account_id}/issuers/{issuer_id}/users/{user_id}"
# The answers that show a secret once (create, rotate, enrolment) and the models they use.
SECRET_ANSWERS = {
    ("post", "/v1/accounts/{account_id}/api-keys"),
    ("post", "/v1/accounts/{account_id}/api-keys/{key_id}/rotate"),
    ("post", "/v1/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/api-keys"),
    ("post", "/v1/accounts/{account_id}/issuers/{issuer_id}/clients"),
    ("post", "/v1/accounts/{account_id}/issuers/{issuer_id}/clients/{client_id}/secret/rotate"),
    ("post", "/v1/accounts/{account_id}/issuers/{issuer_id}/agents/{agent_id}/verifiers"),
    ("post", "/v1/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/sso/rotate-secret"),
    ("post", USER + "/tokens"),
    ("post", "/{issuer_id}/register"),
    ("post", USER + "/verifiers"),
    ("post", USER + "/verifiers/complete-enrollment"),
    ("post", USER + "/verifiers/{verifier_id}/regenerate"),
    # A webhook's signing secret: in the create answer and a rotation's (PATCH auth.rotate) only.
    ("post", "/v1/accounts/{account_id}/webhooks"),
    ("patch", "/v1/accounts/{account_id}/webhooks/{webhook_id}"),
    ("get", "/v1/accounts/{account_id}/webhooks/{webhook_id}"),
    # OAuth: the token endpoint issues tokens.
    ("post", "/{issuer_id}/token"),
}
HTML_OR_EMPTY = {"/{issuer_id}/authorize", "/{issuer_id}/login", "/{issuer_id}/logout",
                 "/{issuer_id}/revoke", "/{issuer_id}/jwks.json", "/{issuer_id}/device"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    return resp.json()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def properties(doc: dict[str, Any], schema: dict[str, Any], seen: set[str] | None = None) -> set[str]:
    """Every property name reachable from a schema (through $ref, items, anyOf, ...)."""
    seen = set() if seen is None else seen
    out: set[str] = set()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return out
        seen.add(name)
        return properties(doc, doc["components"]["schemas"][name], seen)
    for key, value in schema.get("properties", {}).items():
        out.add(key)
        out |= properties(doc, value, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out |= properties(doc, schema[key], seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            out |= properties(doc, sub, seen)
    return out


async def test_every_success_has_a_response_schema(document: dict[str, Any]) -> None:
    ops = operations(document)
    assert len(ops) >= 130
    missing = []
    for method, path, op in ops:
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204" or path in HTML_OR_EMPTY:
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if not schema:
                missing.append(f"{method.upper()} {path} {status}")
    assert missing == []


async def test_the_oidc_endpoints_are_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path, methods in {"/{issuer_id}/token": {"post"}, "/{issuer_id}/userinfo": {"get", "post"},
                          "/{issuer_id}/.well-known/openid-configuration": {"get"},
                          "/{issuer_id}/jwks.json": {"get"}, "/{issuer_id}/revoke": {"post"},
                          "/{issuer_id}/introspect": {"post"}, "/{issuer_id}/authorize": {"get"},
                          "/{issuer_id}/login": {"get", "post"}, "/{issuer_id}/logout": {"get", "post"}
                          }.items():
        assert methods <= set(paths[path]), path
    token = paths["/{issuer_id}/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert {"200", "400", "401", "404"} <= set(token["responses"])
    assert "GET" not in [op.get("operationId") for _, _, op in operations(document)]


async def test_every_v1_route_lists_its_errors_with_the_error_body(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        if not path.startswith("/v1"):
            continue
        for status in ("401", "403", "404", "422", "429", "503"):
            response = op["responses"].get(status)
            assert response, f"{method.upper()} {path} does not list {status}"
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "error_description", "retryable"}


async def test_secrets_only_in_create_and_rotate_answers(document: dict[str, Any]) -> None:
    leaking = []
    for method, path, op in operations(document):
        if (method, path) in SECRET_ANSWERS:
            continue
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema and status.startswith("2"):
                found = properties(document, schema) & SECRET_PROPERTIES
                # An API key's `secret` is its metadata ({algorithm, hint}), never the secret.
                if found - {"secret"} or ("secret" in found and "hint" not in properties(document, schema)):
                    leaking.append(f"{method.upper()} {path}: {sorted(found)}")
    assert leaking == []


async def test_get_me_is_documented_with_the_caller_identity(document: dict[str, Any]) -> None:
    me = document["paths"]["/v1/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"type", "accounts", "organizations"} <= properties(document, me)
