"""`authpi issuer ...`: issuer subcommands."""

from __future__ import annotations

import asyncio

import typer
from sqlalchemy import select

from app.config import get_settings
from app.core.cli import prepare_database, say
from app.core.db import Database
from app.models.issuer import Issuer
from app.signing_key.service import rotate_signing_keys

issuer_cli = typer.Typer(help="Manage issuers", no_args_is_help=True)


@issuer_cli.command("rotate-keys")
def rotate_keys(issuer_id: str = typer.Argument(..., help="The issuer (i_...)")) -> None:
    """New signing keys for the issuer; the old public keys stay in its JWKS until their tokens expire."""
    settings = get_settings()
    url = prepare_database(settings)

    async def run() -> list[tuple[str, str]]:
        db = Database(url, pool_size=1)
        try:
            async with db.unit_of_work() as session:
                issuer = await session.scalar(select(Issuer).where(Issuer.id == issuer_id,
                                                                   Issuer.status != "deleted"))
                if issuer is None:
                    say(f"authpi: issuer {issuer_id} not found")
                    raise typer.Exit(code=1)
                # The service publishes the change: every running replica reloads the key set.
                keys = await rotate_signing_keys(session, issuer, settings.resolved_secret_key(),
                                                 {"type": "system", "actor": "cli"})
                return [(k.id, k.alg) for k in keys]
        finally:
            await db.dispose()

    for kid, alg in asyncio.run(run()):
        print(f"{alg} {kid}")
