from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IssuerOwned, Timestamps, json_object


class AgentVerifier(Base, IssuerOwned, Timestamps):
    """A credential of an agent: a server-generated secret or a blockchain wallet (CAIP-10)."""

    __tablename__ = "agent_verifiers"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), nullable=False, index=True)
    type: Mapped[str] = mapped_column(String(16), nullable=False)  # secret | wallet
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="active")
    # argon2id of the secret (secret verifiers only).
    secret_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Public facts only: {"hint"} for a secret, {"address", "chain_id"} for a wallet.
    credential: Mapped[dict[str, Any]] = json_object()
    usage_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
