"""Agent and agent-verifier bodies and the `Agent` / `AgentVerifiersListItem` shapes (§2.20, §3.1)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, StringConstraints, model_validator

from app.core.validation import Description, Metadata, Name, ScopeList, ShortText, StrictModel
from app.models.agent import Agent
from app.models.agent_verifier import AgentVerifier

# CAIP-2 chain id (`namespace:reference`) and CAIP-10 account id (`chain_id:address`).
_CAIP2 = r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}"
CAIP10 = re.compile(rf"^(?P<chain>{_CAIP2}):(?P<address>[-.%a-zA-Z0-9]{{1,128}})$")


def _caip10(value: str) -> str:
    if not CAIP10.match(value):
        raise ValueError("must be a CAIP-10 account id such as eip155:1:0xab16a96D359eC26a11e2C2b3")
    return value


WalletAddress = Annotated[str, StringConstraints(max_length=180), AfterValidator(_caip10)]


class _AgentFields(StrictModel):
    description: Description | None = None
    model: ShortText | None = None
    provider: ShortText | None = None
    version: ShortText | None = None
    scopes: ScopeList | None = None
    metadata: Metadata | None = None


class AgentCreate(_AgentFields):
    name: Name


class AgentUpdate(_AgentFields):
    name: Name | None = None
    # Deletion has its own route; PATCH moves between these two only.
    status: Literal["active", "suspended"] | None = None
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None


class VerifierCreate(StrictModel):
    type: Literal["secret", "wallet"]
    name: Name | None = None
    description: Description | None = None
    # Wallet verifiers only: the CAIP-10 account id whose signatures identify the agent.
    address: WalletAddress | None = None

    @model_validator(mode="after")
    def _address_matches_type(self) -> VerifierCreate:
        if self.type == "wallet" and self.address is None:
            raise ValueError("address is required for a wallet verifier")
        if self.type == "secret" and self.address is not None:
            raise ValueError("address is only for wallet verifiers")
        return self


def agent_to_api(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "issuer_id": agent.issuer_id,
        "name": agent.name,
        "description": agent.description,
        "model": agent.model,
        "provider": agent.provider,
        "version": agent.agent_version,
        "status": agent.status,
        "status_at": agent.status_at,
        "status_reason": agent.status_reason,
        "scopes": list(agent.scopes),
        "metadata": agent.metadata_,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


def verifier_to_api(v: AgentVerifier) -> dict[str, Any]:
    """Public facts only: the secret hash never leaves the server."""
    return {
        "id": v.id,
        "agent_id": v.agent_id,
        "type": v.type,
        "name": v.name,
        "description": v.description,
        "status": v.status,
        "credential": v.credential,
        "usage_count": v.usage_count,
        "last_used_at": v.last_used_at,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
    }
