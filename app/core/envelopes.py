"""Response envelopes of the contract (SDK-CONTRACT §1.5): OBJ, PAGE, DICT and NONE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.core.etags import etag_for


def dump(item: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """A response model as JSON-ready data."""
    return item.model_dump(mode="json") if isinstance(item, BaseModel) else item


def obj(item: BaseModel | dict[str, Any], *, status_code: int = 200, etag_ms: int | None = None
        ) -> JSONResponse:
    """`{"data": {...}}`, with a strong ETag when the object carries a version timestamp."""
    data = dump(item)
    headers = {}
    if etag_ms is None:
        etag_ms = data.get("updated_at") or data.get("created_at")
    if isinstance(etag_ms, int):
        headers["ETag"] = etag_for(etag_ms)
    return JSONResponse({"data": data}, status_code=status_code, headers=headers)


def created(data: BaseModel | dict[str, Any], *, etag_ms: int | None = None) -> JSONResponse:
    return obj(data, status_code=201, etag_ms=etag_ms)


def page(items: Sequence[BaseModel | dict[str, Any]], *, has_more: bool = False,
         next_cursor: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"data": [dump(i) for i in items], "has_more": has_more,
         "next_cursor": next_cursor if has_more else None, "invalid_count": 0}
    )


def no_content() -> Response:
    return Response(status_code=204)
