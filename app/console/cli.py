"""`authpi account login-link ACCOUNT_ID` (registered by app/cli.py)."""

from __future__ import annotations

import asyncio

import typer

from app.config import get_settings
from app.console.login_link import create_link
from app.core.cli import prepare_database, say
from app.core.db import Database
from app.core.errors import ApiError


def login_link(account_id: str = typer.Argument(..., help="The account to sign in to")) -> None:
    """Print a single-use console sign-in link, valid 10 minutes (it mints a short-lived account key)."""
    settings = get_settings()
    url = prepare_database(settings)

    async def run() -> str:
        db = Database(url, pool_size=1)
        try:
            async with db.unit_of_work() as session:
                _, token = await create_link(session, settings.resolved_secret_key(), account_id)
                return token
        except ApiError as e:
            say(f"authpi: {e.description}")
            raise typer.Exit(code=1) from e
        finally:
            await db.dispose()

    token = asyncio.run(run())
    print(f"{settings.resolved_public_url()}/console/login-link/{token}")
    say("authpi: single use, valid for 10 minutes")
