"""The admin (Core API) router: every resource package's endpoints, under /v1."""

from __future__ import annotations

from fastapi import APIRouter

from app.account.endpoints import router as account_router
from app.api_key.endpoints import router as api_key_router
from app.events.endpoints import router as events_router

api_router = APIRouter(prefix="/v1")
for router in (
    api_key_router,  # first: GET /v1/me is the hot path
    account_router,
    events_router,
):
    api_router.include_router(router)
