"""What every `authpi` subcommand shares: messages on stderr, and the database to work on."""

from __future__ import annotations

import asyncio
import logging

from app.config import Settings
from app.core.db import start_embedded_postgres
from app.core.migrations import upgrade
from app.core.roles import embedded_role_urls, grant_server_role, role_of, trail_protection
from app.process import ConfigError, check_database, check_settings


def say(message: str) -> None:
    # A log line on stderr (JSON in production): stdout stays clean for
    # `eval "$(authpi account create ...)"`.
    logging.getLogger("authpi.cli").info(message.removeprefix("authpi: "))


def resolve_database_urls(settings: Settings) -> tuple[str, str | None]:
    """(server URL, migration URL or None): the external database, or the embedded one (refused
    in production), which runs the server as authpi_server and migrates as authpi_owner."""
    if settings.database_url:
        return settings.database_url, settings.migration_database_url
    if settings.env == "production":
        raise ConfigError("AUTHPI_DATABASE_URL is required when AUTHPI_ENV=production "
                          "(the embedded database is for development only)")
    server_url, migration_url = embedded_role_urls(start_embedded_postgres(settings.data_dir))
    say(f"authpi: using the EMBEDDED PostgreSQL under {settings.data_dir.resolve()} "
        "(development only; set AUTHPI_DATABASE_URL for a real deployment)")
    return server_url, migration_url


def prepare_database(settings: Settings) -> str:
    """Check the settings and the database, migrate (as the owner when there is a migration URL)
    and return the server's URL. A mistake is a ConfigError: one line, exit code 2."""
    check_settings(settings)
    url, migration_url = resolve_database_urls(settings)
    check_database(migration_url or url)
    if migration_url:
        upgrade(migration_url)
        asyncio.run(grant_server_role(migration_url, role_of(url)))
    else:
        upgrade(url)
        say("authpi: no AUTHPI_MIGRATION_DATABASE_URL: the server migrates with its own database "
            "role, so the events trail is protected by its trigger alone (README: database roles)")
    weakness = asyncio.run(trail_protection(url))
    if weakness:
        say(f"authpi: WARNING: {weakness}; the append-only trail is protected by its trigger alone")
    return url
