"""`authpi issuer rotate-keys ISSUER_ID`: rotate an issuer's signing keys from the command line."""

from __future__ import annotations

import asyncio

import typer

issuer_cli = typer.Typer(help="Manage issuers", no_args_is_help=True)


@issuer_cli.command("rotate-keys")
def rotate_keys(issuer_id: str = typer.Argument(..., help="The issuer (i_...)")) -> None:
    """New signing keys for the issuer; the old public keys stay in its JWKS until their tokens expire."""
    from app.cli import _prepare, _say
    from app.config import get_settings

    settings = get_settings()
    url = _prepare(settings)

    async def run() -> list[tuple[str, str]]:
        from sqlalchemy import select

        from app.core.db import Database
        from app.issuer.service import rotate_signing_keys
        from app.models.issuer import Issuer
        from app.oidc.cache import _notify

        db = Database(url, pool_size=1)
        try:
            async with db.unit_of_work() as session:
                issuer = await session.scalar(select(Issuer).where(Issuer.id == issuer_id,
                                                                   Issuer.status != "deleted"))
                if issuer is None:
                    _say(f"authpi: issuer {issuer_id} not found")
                    raise typer.Exit(code=1)
                keys = await rotate_signing_keys(session, issuer, settings.resolved_secret_key(),
                                                 {"type": "system", "actor": "cli"})
                await _notify(session, f"issuer:{issuer_id}")  # every replica reloads its key set
                return [(k.id, k.alg) for k in keys]
        finally:
            await db.dispose()

    for kid, alg in asyncio.run(run()):
        print(f"{alg} {kid}")
