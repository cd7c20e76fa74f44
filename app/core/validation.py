"""Shared request-body building blocks: strict models and bounded field types."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.core.scopes import MAX_SCOPES, scope_error

MAX_METADATA_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8


class StrictModel(BaseModel):
    """Unknown fields are refused (422 with `fields`), so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative (a recursive walk overflowed the stack on a document nested ~500 deep)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if level + 1 > limit:
                return True
            stack.extend((child, level + 1) for child in item)
    return False


def _bounded_object(value: dict[str, Any]) -> dict[str, Any]:
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise ValueError(f"must nest at most {MAX_JSON_DEPTH} levels")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except ValueError as exc:
        raise ValueError("must hold finite numbers only") from exc
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


def _scopes(value: list[str]) -> list[str]:
    for scope in value:
        err = scope_error(scope)
        if err:
            raise ValueError(err)
    # Keep order, drop duplicates.
    return list(dict.fromkeys(value))


def _absolute_uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or "#" in value:
        raise ValueError("must be an absolute URI without a fragment")
    if parts.scheme in ("http", "https") and not parts.netloc:
        raise ValueError("must be an absolute URI with a host")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_http_url)]
AbsoluteUri = Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_absolute_uri)]
Metadata = Annotated[dict[str, Any], AfterValidator(_bounded_object)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_object)]
ScopeList = Annotated[list[str], Field(max_length=MAX_SCOPES), AfterValidator(_scopes)]
Tags = Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=64)]], Field(max_length=50)]
MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
TimestampMs = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP_MS)]
