"""Agent and agent-verifier bodies and the `Agent` / `AgentVerifiersListItem` shapes (§2.20, §3.1)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from app.core.responses import JsonDict, ResponseModel, StrList
from app.core.validation import Description, Metadata, Name, ScopeList, ShortText, StrictModel

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


class AgentOut(ResponseModel):
    id: str
    issuer_id: str
    name: str
    description: str | None
    model: str | None
    provider: str | None
    version: str | None = Field(validation_alias="agent_version")
    status: str
    status_at: int | None
    status_reason: str | None
    scopes: StrList
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None


class AgentVerifierOut(ResponseModel):
    """Public facts only: the secret hash never leaves the server."""

    id: str
    agent_id: str
    type: str
    name: str | None
    description: str | None
    status: str
    credential: dict[str, Any] | None
    usage_count: int
    last_used_at: int | None
    created_at: int
    updated_at: int | None


class AgentVerifierCreated(AgentVerifierOut):
    """The create answer: a `secret` verifier's secret, shown this once."""

    omit_if_none = ("secret",)

    secret: str | None = None
