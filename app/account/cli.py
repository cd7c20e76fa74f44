"""`authpi account ...`: account subcommands."""

from __future__ import annotations

import asyncio

import typer

from app.account.service import create_account
from app.config import get_settings
from app.core.cli import prepare_database
from app.core.db import Database

account_cli = typer.Typer(help="Manage accounts", no_args_is_help=True)


@account_cli.command("create")
def account_create(name: str = typer.Option(..., "--name", help="Account name")) -> None:
    """Create an account and its first account API key; prints shell exports (secret shown once)."""
    url = prepare_database(get_settings())

    async def run() -> tuple[str, str, str]:
        db = Database(url, pool_size=1)
        try:
            async with db.unit_of_work() as session:
                account, key, secret = await create_account(session, name)
                return account.id, key.id, secret
        finally:
            await db.dispose()

    account_id, key_id, secret = asyncio.run(run())
    print(f"export AUTHPI_ACCOUNT_ID={account_id}")
    print(f"export AUTHPI_KEY_ID={key_id}")
    print(f"export AUTHPI_KEY_SECRET={secret}")
