"""Every issuer's OpenID Provider, mounted at /{issuer_id}/... after the /v1 admin router."""

from __future__ import annotations

from fastapi import APIRouter

from app.oidc.endpoints.discovery import router as discovery_router

oidc_router = APIRouter(tags=["oidc"])
for router in (discovery_router,):
    oidc_router.include_router(router)
