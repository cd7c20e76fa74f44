"""What every `authpi` subcommand shares: messages on stderr, and the database to work on."""

from __future__ import annotations

import sys

import typer

from app.config import Settings
from app.core.db import start_embedded_postgres
from app.core.migrations import upgrade


def say(message: str) -> None:
    # stdout stays clean for `eval "$(authpi account create ...)"`.
    print(message, file=sys.stderr, flush=True)


def resolve_database_url(settings: Settings) -> str:
    """The external database, or the embedded one (refused in production)."""
    if settings.database_url:
        return settings.database_url
    if settings.env == "production":
        say("authpi: AUTHPI_DATABASE_URL is required when AUTHPI_ENV=production "
            "(the embedded database is for development only)")
        raise typer.Exit(code=2)
    url = start_embedded_postgres(settings.data_dir)
    say(f"authpi: using the EMBEDDED PostgreSQL under {settings.data_dir.resolve()} "
        "(development only; set AUTHPI_DATABASE_URL for a real deployment)")
    return url


def prepare_database(settings: Settings) -> str:
    """The database URL, migrated to every head."""
    url = resolve_database_url(settings)
    upgrade(url)
    return url
