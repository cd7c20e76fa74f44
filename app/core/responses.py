"""Response models of the contract's envelopes and error body (SDK-CONTRACT §1.5, §1.6), and the error
statuses every route documents in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

T = TypeVar("T")


# A JSON object column that may be NULL in old rows: always an object in the answer.
JsonDict = Annotated[dict[str, Any], BeforeValidator(lambda v: v or {})]
StrList = Annotated[list[str], BeforeValidator(lambda v: list(v or []))]


class _Row:
    """A row seen with some attributes replaced by derived values (see ResponseModel.of)."""

    def __init__(self, row: Any, derived: dict[str, Any]) -> None:
        self._row = row
        self.__dict__.update(derived)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def with_fields(row: Any, **derived: Any) -> Any:
    return _Row(row, derived)


class ResponseModel(BaseModel):
    """A response shape read straight from a row's attributes: `Model.of(row)`. Derived values are
    named in the model's `of` (`with_fields`); nothing else maps rows to bodies by hand."""

    model_config = ConfigDict(from_attributes=True)
    # Fields left out of the body when they are null (the contract omits them).
    omit_if_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for name in self.omit_if_none:
            if out.get(name, 0) is None:
                del out[name]
        return out

    @classmethod
    def of(cls, row: Any) -> Self:
        return cls.model_validate(row)


class Obj(BaseModel, Generic[T]):
    """`{"data": {...}}`"""

    data: T


class Page(BaseModel, Generic[T]):
    """`{"data": [...], "has_more", "next_cursor", "invalid_count"}`, newest first."""

    data: list[T]
    has_more: bool
    next_cursor: str | None
    invalid_count: int = 0


class DataList(BaseModel, Generic[T]):
    """`{"data": [...]}`: a complete list, not paginated."""

    data: list[T]


class FieldErrorBody(BaseModel):
    field: str
    code: str
    message: str


class ErrorBody(BaseModel):
    """The contract's error body. 412 adds `current_etag` (and `currentETag`); 429 `retry_after`."""

    model_config = ConfigDict(extra="allow")

    error: str
    error_description: str
    retryable: bool
    fields: list[FieldErrorBody] | None = None
    current_etag: str | None = None
    retry_after: int | None = Field(None, description="Seconds, as in the Retry-After header")


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        out["headers"] = headers
    return out


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}

# What any authenticated /v1 route may answer besides its success.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed request"),
    401: _error("Missing or invalid credentials",
                {"WWW-Authenticate": {"description": "Basic and Bearer", "schema": {"type": "string"}}}),
    403: _error("The credential may not do this (scope, IP allowlist, tenant)"),
    404: _error("Not found, or not visible to this credential"),
    409: _error("Conflict with the current state (or a concurrent Idempotency-Key)", _RETRY_AFTER),
    412: _error("If-Match does not match the current ETag"),
    413: _error("The request body is too large"),
    422: _error("The request is invalid (`fields` says where)"),
    429: _error("Too many requests", _RETRY_AFTER),
    431: _error("The request headers are too large"),
    503: _error("The database is unavailable; retry later", _RETRY_AFTER),
}


def optional_json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that a route reads itself (it may also be absent)."""
    return {"requestBody": {"required": False, "content": {"application/json": {
        "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}
