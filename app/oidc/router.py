"""Every issuer's OpenID Provider, mounted at /{issuer_id}/... after the /v1 admin router."""

from __future__ import annotations

from fastapi import APIRouter

from app.oidc.endpoints.authorize import router as authorize_router
from app.oidc.endpoints.device import router as device_router
from app.oidc.endpoints.discovery import router as discovery_router
from app.oidc.endpoints.introspect import router as introspect_router
from app.oidc.endpoints.login import router as login_router
from app.oidc.endpoints.logout import router as logout_router
from app.oidc.endpoints.par import router as par_router
from app.oidc.endpoints.registration import router as registration_router
from app.oidc.endpoints.revoke import router as revoke_router
from app.oidc.endpoints.token import router as token_router
from app.oidc.endpoints.userinfo import router as userinfo_router

oidc_router = APIRouter(tags=["oidc"])
for router in (token_router, discovery_router, authorize_router, login_router, userinfo_router,
               revoke_router, introspect_router, logout_router, registration_router,
               device_router, par_router):
    oidc_router.include_router(router)
