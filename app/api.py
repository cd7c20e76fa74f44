"""The admin (Core API) router: every resource package's endpoints, under /v1."""

from __future__ import annotations

from fastapi import APIRouter

from app.account.endpoints import router as account_router
from app.agent.endpoints import router as agent_router
from app.api_key.endpoints import router as api_key_router
from app.auth_method.endpoints import router as auth_method_router
from app.client.endpoints import router as client_router
from app.core.responses import API_ERRORS
from app.domain.endpoints import router as domain_router
from app.events.endpoints import router as events_router
from app.group.endpoints import router as group_router
from app.invitation.endpoints import router as invitation_router
from app.issuer.endpoints import router as issuer_router
from app.membership.endpoints import router as membership_router
from app.note.endpoints import router as note_router
from app.oidc.admin import router as oidc_admin_router
from app.organization.endpoints import router as organization_router
from app.session.endpoints import router as session_router
from app.usage.endpoints import router as usage_router
from app.user.endpoints import router as user_router
from app.webhooks.endpoints import router as webhooks_router

# Every /v1 route documents the contract's error statuses with the error body.
api_router = APIRouter(prefix="/v1", responses=API_ERRORS)
for router in (
    api_key_router,  # first: GET /v1/me is the hot path
    account_router,
    events_router,
    invitation_router,
    issuer_router,
    oidc_admin_router,
    client_router,
    session_router,
    organization_router,
    membership_router,
    group_router,
    user_router,
    webhooks_router,
    agent_router,
    auth_method_router,
    note_router,
    domain_router,
    usage_router,
):
    api_router.include_router(router)
