"""Agents: non-human principals of an issuer, and the verifiers (credentials) they prove themselves with.

An agent's id (`agt_...`) is its OAuth `client_id` for the client_credentials grant; its secrets
are verified (and cached) by app.agent.verification, which the changes here invalidate.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agent.schemas import CAIP10, AgentCreate, AgentUpdate, VerifierCreate
from app.core.auth import Principal
from app.core.crypto import generate_secret, hash_secret, secret_hint
from app.core.errors import Conflict, NotFound
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.events.service import record
from app.models.agent import Agent
from app.models.agent_verifier import AgentVerifier
from app.models.base import Timestamps, assign
from app.runtime.invalidation import publish

MAX_VERIFIERS_PER_AGENT = 20
SECRET_PREFIX = "agts_"  # recognisable in leak scanners; the rest is 32 random bytes


def touch(row: Timestamps) -> None:
    """A new version strictly after the current one, so the ETag changes even within one ms."""
    row.updated_at = max(now_ms(), row.version + 1)


def _subject(agent: Agent) -> dict[str, Any]:
    return {"type": "agent", "id": agent.id}


async def _event(session: AsyncSession, agent: Agent, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=agent.account_id, issuer_id=agent.issuer_id,
                 subject=_subject(agent), data=data, auth=auth)


async def get_agent(session: AsyncSession, *, account_id: str, issuer_id: str, agent_id: str,
                    for_update: bool = False) -> Agent:
    """The agent if it lives in this account and issuer and is not deleted; else 404."""
    stmt = select(Agent).where(Agent.id == agent_id, Agent.account_id == account_id,
                               Agent.issuer_id == issuer_id, Agent.status != "deleted")
    return await one_or_404(session, stmt, "agent", for_update=for_update)


def _apply(agent: Agent, changes: dict[str, Any]) -> None:
    assign(agent, changes, lists=("scopes",), columns={"version": "agent_version"})


async def create_agent(session: AsyncSession, *, account_id: str, issuer_id: str, body: AgentCreate,
                       auth: Principal) -> Agent:
    agent = Agent(id=new_id("agt"), account_id=account_id, issuer_id=issuer_id, status="active",
                  name=body.name, scopes=[], metadata_={}, created_at=now_ms())
    _apply(agent, body.model_dump(exclude_unset=True))
    session.add(agent)
    await session.flush()
    await _event(session, agent, "agent.created", auth, {"name": agent.name})
    return agent


async def update_agent(session: AsyncSession, agent: Agent, body: AgentUpdate, auth: Principal) -> Agent:
    changes = body.model_dump(exclude_unset=True)
    new_status = changes.pop("status", None)
    reason = changes.pop("status_reason", None)
    _apply(agent, changes)
    reason_sent = "status_reason" in body.model_fields_set
    if agent.apply_status(new_status, reason, reason_sent, auth.actor_id):
        changes["status"] = new_status
    elif reason_sent:
        changes["status_reason"] = reason
    touch(agent)
    await session.flush()
    await publish(session, "agent", agent.id)  # every replica's verified-agent cache
    await _event(session, agent, "agent.updated", auth, {"changed": sorted(changes)})
    return agent


async def delete_agent(session: AsyncSession, agent: Agent, auth: Principal) -> None:
    """Soft delete: the agent is 404 everywhere and its verifiers stop working."""
    agent.status = "deleted"
    agent.status_at = now_ms()
    agent.status_by = auth.actor_id
    touch(agent)
    verifiers = await session.scalars(select(AgentVerifier).where(
        AgentVerifier.agent_id == agent.id, AgentVerifier.account_id == agent.account_id,
        AgentVerifier.status == "active"))
    for v in verifiers:
        v.status = "revoked"
        touch(v)
    await session.flush()
    await publish(session, "agent", agent.id)
    await _event(session, agent, "agent.deleted", auth, {})


def _has_verifier() -> Any:
    return exists().where(AgentVerifier.agent_id == Agent.id, AgentVerifier.status == "active")


async def list_agents(session: AsyncSession, *, account_id: str, issuer_id: str, params: PageParams,
                      filters: dict[str, Any]) -> tuple[list[Agent], bool, str | None]:
    stmt: Select[Any] = select(Agent).where(Agent.account_id == account_id, Agent.issuer_id == issuer_id,
                                            Agent.status != "deleted")
    for name in ("status", "model", "provider"):
        if filters.get(name):
            stmt = stmt.where(getattr(Agent, name) == filters[name])
    if filters.get("has_verifiers") is not None:
        stmt = stmt.where(_has_verifier() if filters["has_verifiers"] else ~_has_verifier())
    return await paginate(session, stmt, Agent.id, params)


# -- verifiers

async def list_verifiers(session: AsyncSession, agent: Agent) -> list[AgentVerifier]:
    rows = await session.scalars(select(AgentVerifier).where(
        AgentVerifier.agent_id == agent.id, AgentVerifier.account_id == agent.account_id,
        AgentVerifier.status == "active").order_by(AgentVerifier.id.desc()))
    return list(rows)


async def get_verifier(session: AsyncSession, agent: Agent, verifier_id: str) -> AgentVerifier:
    row = await session.scalar(select(AgentVerifier).where(
        AgentVerifier.id == verifier_id, AgentVerifier.agent_id == agent.id,
        AgentVerifier.account_id == agent.account_id, AgentVerifier.status == "active"
    ).with_for_update())
    if row is None:
        raise NotFound("verifier")
    return row


async def create_verifier(session: AsyncSession, agent: Agent, body: VerifierCreate,
                          auth: Principal) -> tuple[AgentVerifier, str | None]:
    """A new verifier; for `secret` also the plaintext, returned in this response only.

    The caller holds the agent row locked, so the per-agent cap cannot be raced past.
    """
    count = await session.scalar(select(func.count()).select_from(AgentVerifier).where(
        AgentVerifier.agent_id == agent.id, AgentVerifier.status == "active"))
    if (count or 0) >= MAX_VERIFIERS_PER_AGENT:
        raise Conflict(f"An agent has at most {MAX_VERIFIERS_PER_AGENT} verifiers")
    row = AgentVerifier(id=new_id("agv"), account_id=agent.account_id, issuer_id=agent.issuer_id,
                        agent_id=agent.id, type=body.type, name=body.name,
                        description=body.description, status="active", usage_count=0,
                        created_at=now_ms())
    secret: str | None = None
    if body.type == "secret":
        secret = SECRET_PREFIX + generate_secret()
        row.secret_hash = await asyncio.to_thread(hash_secret, secret)
        row.credential = {"hint": secret_hint(secret)}
    else:
        match = CAIP10.match(body.address or "")
        assert match is not None  # validated by the schema
        if await session.scalar(select(AgentVerifier.id).where(
                AgentVerifier.agent_id == agent.id, AgentVerifier.status == "active",
                AgentVerifier.credential["address"].astext == body.address)):
            raise Conflict("This wallet is already a verifier of the agent")
        row.credential = {"address": body.address, "chain_id": match["chain"]}
    session.add(row)
    await session.flush()
    await _event(session, agent, "agent.verifier.added", auth, {"verifier_id": row.id, "type": row.type})
    return row, secret


async def delete_verifier(session: AsyncSession, agent: Agent, row: AgentVerifier,
                          auth: Principal) -> None:
    await session.delete(row)
    await session.flush()
    await publish(session, "agent", agent.id)  # the verifier's secret stops working everywhere
    await _event(session, agent, "agent.verifier.removed", auth, {"verifier_id": row.id, "type": row.type})
