"""Agents of an issuer and their verifiers: `{I}/agents`, `{G}/verifiers` (SDK-CONTRACT §2.20)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.agent import service
from app.agent.schemas import (
    AgentCreate,
    AgentOut,
    AgentUpdate,
    AgentVerifierCreated,
    AgentVerifierOut,
    VerifierCreate,
)
from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.errors import ValidationFailed
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page, with_fields
from app.core.session import db_session
from app.issuer.dependencies import get_issuer_in_account

router = APIRouter(tags=["agents"])

AGENTS = "/accounts/{account_id}/issuers/{issuer_id}/agents"
AGENT = AGENTS + "/{agent_id}"
READ = scoped("issuers.agents", "read")
WRITE = scoped("issuers.agents", "write")


class AgentFilters:
    def __init__(
        self,
        status: str | None = Query(None, max_length=32),
        model: str | None = Query(None, max_length=200),
        provider: str | None = Query(None, max_length=200),
        has_verifiers: str | None = Query(None, max_length=8),
    ) -> None:
        flag = None
        if has_verifiers is not None:
            # The SDK types this filter `str`: accept exactly "true" / "false".
            if has_verifiers.lower() not in ("true", "false"):
                raise ValidationFailed("has_verifiers must be 'true' or 'false'", field="has_verifiers")
            flag = has_verifiers.lower() == "true"
        self.values = {"status": status, "model": model, "provider": provider, "has_verifiers": flag}


@router.get(AGENTS, response_model=Page[AgentOut])
async def list_agents(
    account_id: str,
    issuer_id: str,
    filters: AgentFilters = Depends(),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The issuer's agents, newest first."""
    await get_issuer_in_account(session, account_id, issuer_id)
    rows, has_more, cursor = await service.list_agents(
        session, account_id=account_id, issuer_id=issuer_id, params=params, filters=filters.values)
    return envelopes.page([AgentOut.of(a) for a in rows], has_more=has_more, next_cursor=cursor)


@router.post(AGENTS, status_code=201, response_model=Obj[AgentOut])
async def create_agent(
    account_id: str,
    issuer_id: str,
    body: AgentCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Register an agent; give it a verifier to let it obtain tokens."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = await service.create_agent(session, account_id=account_id, issuer_id=issuer_id, body=body,
                                       auth=principal)
    return envelopes.created(AgentOut.of(agent))


@router.get(AGENT, response_model=Obj[AgentOut])
async def get_agent(
    account_id: str,
    issuer_id: str,
    agent_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One agent."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = await service.get_agent(session, account_id=account_id, issuer_id=issuer_id,
                                    agent_id=agent_id)
    return envelopes.obj(AgentOut.of(agent))


@router.patch(AGENT, response_model=Obj[AgentOut])
async def update_agent(
    account_id: str,
    issuer_id: str,
    agent_id: str,
    body: AgentUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change an agent; status moves between active and suspended."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = if_match(request, await service.get_agent(session, account_id=account_id, issuer_id=issuer_id,
                                                      agent_id=agent_id, for_update=True))
    agent = await service.update_agent(session, agent, body, principal)
    return envelopes.obj(AgentOut.of(agent))


@router.delete(AGENT, status_code=204)
async def delete_agent(
    account_id: str,
    issuer_id: str,
    agent_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete an agent (soft: it is 404 everywhere afterwards and its verifiers are revoked)."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = if_match(request, await service.get_agent(session, account_id=account_id, issuer_id=issuer_id,
                                                      agent_id=agent_id, for_update=True))
    await service.delete_agent(session, agent, principal)
    return envelopes.no_content()


@router.get(AGENT + "/verifiers", response_model=Page[AgentVerifierOut])
async def list_verifiers(
    account_id: str,
    issuer_id: str,
    agent_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The agent's active verifiers (at most 20, so one page)."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = await service.get_agent(session, account_id=account_id, issuer_id=issuer_id,
                                    agent_id=agent_id)
    return envelopes.page([AgentVerifierOut.of(v) for v in await service.list_verifiers(session, agent)])


@router.post(AGENT + "/verifiers", status_code=201, response_model=Obj[AgentVerifierCreated])
async def create_verifier(
    account_id: str,
    issuer_id: str,
    agent_id: str,
    body: VerifierCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Add a verifier; a `secret` verifier's secret is in this response only."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = await service.get_agent(session, account_id=account_id, issuer_id=issuer_id,
                                    agent_id=agent_id, for_update=True)
    row, secret = await service.create_verifier(session, agent, body, principal)
    return envelopes.created(AgentVerifierCreated.model_validate(with_fields(row, secret=secret)))


@router.delete(AGENT + "/verifiers/{verifier_id}", status_code=204)
async def delete_verifier(
    account_id: str,
    issuer_id: str,
    agent_id: str,
    verifier_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Remove a verifier; the credential stops working at once."""
    await get_issuer_in_account(session, account_id, issuer_id)
    agent = await service.get_agent(session, account_id=account_id, issuer_id=issuer_id,
                                    agent_id=agent_id, for_update=True)
    row = if_match(request, await service.get_verifier(session, agent, verifier_id))
    await service.delete_verifier(session, agent, row, principal)
    return envelopes.no_content()
