"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.core.migrations import database_heads, script_revisions

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    schema_heads: list[str] | None = Field(None, alias="schema")


@router.get("/healthz", response_model=Liveness)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "The database is unreachable or behind"}})
async def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the migrations' head."""
    db = request.app.state.db
    try:
        await db.ping()
        current = await database_heads(db.engine)
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    expected = request.app.state.schema_heads
    if current != expected and not (current - script_revisions()):
        # Behind: this code needs migrations that have not run. A schema *ahead* (revisions this
        # code does not know: a newer release migrated first, as in a rolling upgrade) is ready.
        return JSONResponse({"status": "unavailable", "database": "schema not at head"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "schema": sorted(current)})
