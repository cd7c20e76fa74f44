"""What every `authpi` subcommand shares: messages on stderr, and the database to work on."""

from __future__ import annotations

import asyncio
import sys

import typer

from app.config import Settings
from app.core.db import start_embedded_postgres
from app.core.migrations import upgrade
from app.core.roles import embedded_role_urls, grant_server_role, role_of, trail_protection


def say(message: str) -> None:
    # stdout stays clean for `eval "$(authpi account create ...)"`.
    print(message, file=sys.stderr, flush=True)


def resolve_database_urls(settings: Settings) -> tuple[str, str | None]:
    """(server URL, migration URL or None): the external database, or the embedded one (refused
    in production), which runs the server as authpi_server and migrates as authpi_owner."""
    if settings.database_url:
        return settings.database_url, settings.migration_database_url
    if settings.env == "production":
        say("authpi: AUTHPI_DATABASE_URL is required when AUTHPI_ENV=production "
            "(the embedded database is for development only)")
        raise typer.Exit(code=2)
    server_url, migration_url = embedded_role_urls(start_embedded_postgres(settings.data_dir))
    say(f"authpi: using the EMBEDDED PostgreSQL under {settings.data_dir.resolve()} "
        "(development only; set AUTHPI_DATABASE_URL for a real deployment)")
    return server_url, migration_url


def prepare_database(settings: Settings) -> str:
    """Migrate (as the owner when there is a migration URL) and return the server's URL."""
    url, migration_url = resolve_database_urls(settings)
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
