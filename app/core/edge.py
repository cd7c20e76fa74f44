"""Validation at the edge: what no handler, driver or column can take is refused before routing.

- NUL is refused in the path, the query and form bodies (PostgreSQL text cannot hold it).
- JSON bodies are checked before any handler parses them: nesting depth (counted over the raw
  bytes, so no parser recurses into a hostile document), duplicate keys, NaN/Infinity and numbers
  that overflow a float, integers beyond int64 (the widest column), NUL and lone surrogates in
  strings and keys, and the length of strings, arrays and objects. The walk is iterative.

Each refusal is a 4xx in the contract's error shape and changes nothing. Bodies are already
bounded by the request limits (outside this layer); the body read here is replayed to the app.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ApiError, BadRequest, ValidationFailed, error_response

MAX_JSON_DEPTH = 32
MAX_OBJECT_KEYS = 1_000
MAX_ARRAY_ITEMS = 10_000
MAX_STRING_CHARS = 65_536
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
# A JSON string literal (unrolled loop: no backtracking blow-up), to blank strings out before
# bracket counting.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Refused(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.description)
        self.error = error


def _field(path: list[str | int]) -> str:
    return ".".join(str(p) for p in path) or "body"


def _refuse(path: list[str | int], code: str, message: str) -> _Refused:
    return _Refused(ValidationFailed(f"{_field(path) if path else 'The body'}: {message}",
                                     field=_field(path), code=code))


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects nest deeper than `limit`, counted without parsing."""
    brackets = _JSON_STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_OBJECT_KEYS:
        raise _refuse([], "too_many_keys", f"an object may hold at most {MAX_OBJECT_KEYS} keys")
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _refuse([key], "duplicate_key", "the key appears more than once")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise _refuse([], "non_finite_number", f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _refuse([], "non_finite_number", f"{text[:32]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text) > 20:
        raise _refuse([], "out_of_range", "an integer must fit in 64 bits")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _refuse([], "out_of_range", "an integer must fit in 64 bits")
    return value


def _check_string(value: str, path: list[str | int]) -> None:
    if len(value) > MAX_STRING_CHARS:
        raise _refuse(path, "string_too_long", f"a string may hold at most {MAX_STRING_CHARS} characters")
    if _BAD_CHARS.search(value):
        raise _refuse(path, "invalid_characters", "NUL and lone surrogates are not allowed")


def check_json_value(document: Any) -> None:
    """Strings, keys and array lengths of a parsed document, walked without recursion."""
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            _check_string(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, [*path, key])
                stack.append((item, [*path, key]))
        elif isinstance(value, list):
            if len(value) > MAX_ARRAY_ITEMS:
                raise _refuse(path, "too_many_items", f"an array may hold at most {MAX_ARRAY_ITEMS} items")
            stack.extend((item, [*path, i]) for i, item in enumerate(value))


def check_json_body(body: bytes) -> None:
    """Raise _Refused for a JSON body no handler should see. Bodies that are not JSON at all are
    left to the framework's own parser (its 422 `json_invalid`)."""
    if json_depth_exceeds(body):
        raise _refuse([], "too_deep", f"JSON may nest at most {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(body, object_pairs_hook=_pairs, parse_constant=_constant,
                              parse_float=_float, parse_int=_int)
    except ValueError:  # not JSON (UnicodeDecodeError included): the framework answers it
        return
    check_json_value(document)


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True  # FastAPI parses a body without a content type as JSON
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def check_target(scope: Scope) -> ApiError | None:
    if "\x00" in scope["path"]:
        return BadRequest("The path must not contain NUL")
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return BadRequest("The query must not contain NUL")
    return None


class EdgeValidationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = check_target(scope)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
                break
        is_json = _is_json(content_type)
        is_form = content_type is not None and content_type.lower().startswith(
            b"application/x-www-form-urlencoded")
        if not (is_json or is_form):
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left: nothing to validate, let the app see the disconnect.
                await self.app(scope, _replay([], receive, message), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                if is_form:
                    if b"%00" in body or b"\x00" in body:
                        raise _Refused(BadRequest("Form fields must not contain NUL"))
                else:
                    check_json_body(body)
            except _Refused as refused:
                await error_response(refused.error)(scope, receive, send)
                return
        await self.app(scope, _replay([body], receive), send)


def _replay(bodies: list[bytes], receive: Receive, pending: Message | None = None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent, pending
        if pending is not None:
            message, pending = pending, None
            return message
        if not sent and bodies:
            sent = True
            return {"type": "http.request", "body": bodies[0], "more_body": False}
        return await receive()

    return replay
