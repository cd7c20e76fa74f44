"""ETags are the quoted version timestamp in ms (SDK-CONTRACT §1.7); If-Match guards writes."""

from __future__ import annotations

from typing import Protocol, TypeVar

from fastapi import Request

from app.core.errors import PreconditionFailed


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)


def etag_for(version_ms: int) -> str:
    return f'"{version_ms}"'


def _normalise(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def check_if_match(request: Request, version_ms: int) -> None:
    """412 with the current ETag when If-Match is present and names another version.

    No If-Match means an unconditional write (the docs' rule); `*` matches any existing object.
    """
    header = request.headers.get("if-match")
    if header is None:
        return
    current = etag_for(version_ms)
    candidates = [c for c in header.split(",") if c.strip()]
    if any(c.strip() == "*" or _normalise(c) == str(version_ms) for c in candidates):
        return
    raise PreconditionFailed(current)


def if_match(request: Request, row: V) -> V:
    """The row a write is about, once the request's If-Match (if any) names its current version."""
    check_if_match(request, row.version)
    return row
