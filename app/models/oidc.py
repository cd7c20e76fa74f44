"""OIDC protocol state: login sessions, authorization codes, grants (refresh families), refresh tokens,
revoked access tokens. Codes and refresh tokens are stored only as HMAC-SHA256 under the server key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, StatusFields, Timestamps, json_list, json_object


class LoginSession(Base, Timestamps, StatusFields):
    """A user's sign-in at one issuer's hosted login (the `sid` claim); its cookie is path-scoped."""

    __tablename__ = "login_sessions"
    __table_args__ = (Index("ix_login_sessions_issuer_id_user_id", "issuer_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # s_...
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"), nullable=False)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False)
    # HMAC of the cookie value: a database leak does not yield usable cookies.
    cookie_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    auth_time: Mapped[int] = mapped_column(BigInteger, nullable=False)  # seconds (a JWT claim)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_activity_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    origin: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device: Mapped[dict[str, Any]] = json_object()
    authentication: Mapped[dict[str, Any]] = json_object()
    access_token_issued_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refresh_token_issued_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refresh_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    client_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    metadata_: Mapped[dict[str, Any]] = json_object("metadata")


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(String(40), nullable=False)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[str] = mapped_column(String(40), nullable=False)
    session_id: Mapped[str] = mapped_column(String(40), nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    nonce: Mapped[str | None] = mapped_column(String(512), nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128), nullable=False)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    resources: Mapped[list[Any]] = json_list()
    auth_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # How the user authenticated (RFC 8176 `amr`, the `acr`), carried into the tokens.
    amr: Mapped[list[Any]] = json_list()
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # What the code's redemption issued: revoked if the code is ever presented again.
    grant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class OidcGrant(Base, Timestamps):
    """One authorization: the family of refresh tokens and access tokens (`gid`) it produced."""

    __tablename__ = "oidc_grants"
    __table_args__ = (Index("ix_oidc_grants_session_id", "session_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # grt_...
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    issuer_id: Mapped[str] = mapped_column(String(40), nullable=False)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[str] = mapped_column(String(40), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    resources: Mapped[list[Any]] = json_list()
    auth_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amr: Mapped[list[Any]] = json_list()
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    revoked_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # DPoP (RFC 9449): a public client's refresh tokens are bound to this key thumbprint.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("oidc_grants.id"), nullable=False, index=True)
    # active -> rotated (presenting it again is reuse) | revoked
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RevokedAccessToken(Base):
    """Access tokens revoked one by one (RFC 7009); kept until they would have expired anyway."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), nullable=False, index=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
