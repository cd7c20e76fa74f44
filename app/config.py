"""Settings. Every AUTHPI_* variable lives here and in the README's configuration table."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_NAMESERVER = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s,:\[\]]+)(:\d{1,5})?$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHPI_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    # Unset: an embedded PostgreSQL is started under data_dir (refused in production).
    database_url: str | None = None
    # The owner role's URL for migrations (DDL); the server itself then runs as the least-privileged
    # role of database_url. Unset with an external database: the server migrates with its own URL.
    migration_database_url: str | None = None
    data_dir: Path = Path(".authpi")
    host: str = "127.0.0.1"
    port: int = 8000
    # Origin the OIDC issuers are published under: issuer URL = {public_url}/{issuer_id}.
    public_url: str | None = None
    # Server key: encrypts signing keys at rest and keys the HMACs of short-lived tokens.
    # Unset outside production: generated once and kept in {data_dir}/secret.key.
    secret_key: str | None = None
    log_level: str = "info"
    # json (one object per line) or console (human-readable lines).
    log_format: Literal["json", "console"] = "json"
    # One line per request: method, route template, status, duration, principal id.
    access_log: bool = True
    # GET /metrics in the Prometheus text format.
    metrics_enabled: bool = True
    db_pool_size: int = 10
    # A connect the database does not answer within this is an outage: 503 with Retry-After at once.
    db_connect_timeout_seconds: float = 3.0
    # Verified API keys are cached this long at most (revocation is pushed by LISTEN/NOTIFY).
    key_cache_ttl_seconds: float = 60.0
    # Verified agent secrets likewise (suspension, deletion, verifier removal are pushed).
    agent_cache_ttl_seconds: float = 60.0
    # DPoP (RFC 9449): a proof's iat may be this far from now either way (its jti is remembered
    # as long); nonces (HMACs of a time window) are required with dpop_nonce_required.
    dpop_proof_max_age_seconds: float = 60.0
    dpop_nonce_required: bool = False
    dpop_nonce_lifetime_seconds: float = 300.0
    # PAR (RFC 9126): how long a pushed request's request_uri may be used (once).
    par_request_uri_ttl_seconds: int = 60
    # Failed verifications allowed per key id / client address per window before 429.
    # The shared failure throttle (app.runtime.throttle): failures per (credential, address) and
    # per address allowed in a window; beyond `auth_fail_limit` per credential, a progressive delay.
    auth_fail_limit: int = 20
    auth_fail_address_limit: int = 100
    auth_fail_window_seconds: int = 60
    # Redis for the throttle's counters instead of PostgreSQL (optional).
    redis_url: str | None = None
    # While the database is unreachable, a warm API key keeps answering this long after the last
    # successful contact with it.
    outage_grace_seconds: float = 60.0
    argon2_workers: int = 2
    # argon2 verifications queued or running at once; beyond it a cold verification gets 429 at once.
    argon2_max_pending: int = 16
    # asyncpg connections of the hot path (cold key lookups, metered event batches).
    hot_path_pool_size: int = 4
    # asyncpg connections of the token endpoint's one-statement grants (refresh, code redemption):
    # each request holds one for a single round trip, its commit included.
    token_pool_size: int = 8
    # Metered events (api-key.verified): minimum gap between two batch COPYs under load (a lone
    # event is written at once; every event within 1 s at most).
    event_batch_interval_seconds: float = 0.05
    # A 429 for too many failed attempts is sent after this delay, so a flooding client that
    # retries at once takes a small share of the server (sleeping costs nothing).
    auth_throttle_delay_seconds: float = 0.5
    # Also lifts the same rules for the URLs federation fetches (upstream discovery, JWKS, tokens).
    webhooks_allow_private: bool = False
    # Resolvers for domain verification (TXT lookups): comma-separated host[:port]; empty: the system's.
    dns_nameservers: str = ""
    # Run the webhook relay inside `authpi serve` (set false when running `authpi worker` apart).
    webhooks_relay_enabled: bool = True
    # Webhook delivery: per-attempt HTTP timeout; relay batches run in parallel (one DB connection each)
    # of up to batch_size deliveries; a poll backs up LISTEN/NOTIFY and wakes for due retries.
    webhooks_timeout_seconds: float = 10.0
    webhooks_relay_concurrency: int = 4
    webhooks_relay_batch_size: int = 50
    webhooks_poll_interval_seconds: float = 2.0
    # After a secret rotation the old secret keeps signing alongside the new one this long.
    webhooks_secret_grace_seconds: int = 86_400
    # The outbox (email, back-channel logout): attempts per message, retry backoff (x4 from the
    # initial delay, capped), messages claimed per batch.
    outbox_max_attempts: int = 8
    outbox_retry_initial_seconds: float = 5.0
    outbox_retry_max_seconds: float = 3600.0
    outbox_batch_size: int = 20
    # Email: smtp://user:pass@host:587?starttls=true (or starttls=false), smtps://user:pass@host:465.
    # Unset outside production: messages are written as .eml files under {data_dir}/mail/.
    smtp_url: str | None = None
    smtp_timeout_seconds: float = 30.0
    email_from: str = "authpi <no-reply@localhost>"
    # A directory of Jinja2 templates overriding the built-in ones file by file (app/email/templates).
    email_templates_dir: Path | None = None
    # Lifetime of an invitation (its link) when the create request names no expires_at; a resend
    # restarts it.
    invitation_ttl_seconds: int = 7 * 24 * 3600
    max_body_bytes: int = 1_048_576
    # Slow clients: a request's headers must arrive within this (from connect or its first byte),
    # its body within body_timeout_seconds after them; else 408 and the connection is closed.
    header_timeout_seconds: float = 5.0
    body_timeout_seconds: float = 30.0
    # Client address: the immediate peer is a trusted proxy (its X-Forwarded-For rightmost hop is
    # the client), or the proxies are named by CIDR (the client is the rightmost hop not in them).
    trust_proxy_headers: bool = False
    # Dynamic client registration (RFC 7591): registrations allowed per client address and issuer
    # per window, and the lifetime of an initial access token.
    registration_rate_limit: int = 10
    registration_window_seconds: int = 3600
    registration_token_ttl_seconds: int = 86_400
    # Device authorization grant (RFC 8628): how long a device code lives, and the polling interval
    # the device is told to keep (slow_down adds 5 s to it).
    device_code_ttl_seconds: int = 600
    device_poll_interval_seconds: int = 5
    trusted_proxies: str = ""

    @field_validator("dns_nameservers")
    @classmethod
    def _nameservers(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if not _NAMESERVER.match(item):
                raise ValueError(f"{item!r} is not host[:port]")
        return value

    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        if self.env == "production":
            raise RuntimeError("AUTHPI_SECRET_KEY is required when AUTHPI_ENV=production")
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
