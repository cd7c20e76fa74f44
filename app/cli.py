"""The `authpi` command: serve, migrate, account create, ..."""

from __future__ import annotations

import asyncio
import logging

import typer

from app.config import Settings
from app.process import ConfigError, check_database, check_settings, load_settings, run_main, serve_uvicorn

cli = typer.Typer(help="authpi: a self-hostable AuthPI identity server", no_args_is_help=True)
account_cli = typer.Typer(help="Manage accounts", no_args_is_help=True)
cli.add_typer(account_cli, name="account")
from app.oidc.cli import issuer_cli  # noqa: E402 - registered beside account

cli.add_typer(issuer_cli, name="issuer")


def _say(message: str) -> None:
    # A log line on stderr (JSON in production): stdout stays clean for `eval "$(authpi account create ...)"`.
    logging.getLogger("authpi.cli").info(message.removeprefix("authpi: "))


def resolve_database_url(settings: Settings) -> str:
    """The external database, or the embedded one (refused in production)."""
    if settings.database_url:
        return settings.database_url
    if settings.env == "production":
        raise ConfigError("AUTHPI_DATABASE_URL is required when AUTHPI_ENV=production "
                          "(the embedded database is for development only)")
    from app.core.db import start_embedded_postgres

    url = start_embedded_postgres(settings.data_dir)
    _say(f"authpi: using the EMBEDDED PostgreSQL under {settings.data_dir.resolve()} "
         "(development only; set AUTHPI_DATABASE_URL for a real deployment)")
    return url


def _prepare(settings: Settings) -> str:
    from app.core.migrations import upgrade

    check_settings(settings)
    url = resolve_database_url(settings)
    check_database(url)
    upgrade(url)
    return url


@cli.command()
def migrate() -> None:
    """Apply the database migrations."""
    _prepare(load_settings())
    _say("authpi: migrations applied")


@cli.command()
def serve(
    host: str = typer.Option(None, help="Listen address (default AUTHPI_HOST)"),
    port: int = typer.Option(None, help="Listen port (default AUTHPI_PORT)"),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes sharing the port"),
) -> None:
    """Migrate, then serve the admin API and every issuer's OIDC endpoints (SIGTERM/SIGINT: drain,
    flush, stop)."""
    import os

    import uvicorn

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings().model_copy(update=overrides)
    url = _prepare(settings)
    common = {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
              "access_log": False, "log_config": None, "timeout_graceful_shutdown": 30}
    if workers > 1:
        # Each worker builds its app from the environment: the resolved database and the overrides.
        os.environ.update({"AUTHPI_DATABASE_URL": url, "AUTHPI_HOST": settings.host,
                           "AUTHPI_PORT": str(settings.port)})
        config = uvicorn.Config("app.process:worker_app", factory=True, workers=workers, **common)
    else:
        from app.main import create_app

        config = uvicorn.Config(create_app(settings, database_url=url), **common)
    _say(f"authpi: listening on http://{settings.host}:{settings.port} with {workers} worker(s) "
         f"(issuers at {settings.resolved_public_url()}/{{issuer_id}})")
    serve_uvicorn(config)


@cli.command()
def worker() -> None:
    """Run the webhook relay alone (no HTTP); any number of workers and servers may share a database."""
    import signal

    settings = load_settings()
    url = _prepare(settings)
    from app.webhooks.relay import run_worker

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        _say("authpi: webhook relay worker running (SIGTERM to stop)")
        await run_worker(settings, url, stop)

    asyncio.run(run())


@account_cli.command("create")
def account_create(name: str = typer.Option(..., "--name", help="Account name")) -> None:
    """Create an account and its first account API key; prints shell exports (secret shown once)."""
    settings = load_settings()
    url = _prepare(settings)

    async def run() -> tuple[str, str, str]:
        from app.account.service import create_account
        from app.core.db import Database

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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"authpi {version('authpi')}")
        raise typer.Exit()


@cli.callback()
def _root(_version_flag: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                             help="Print the version and exit")) -> None:
    """authpi: a self-hostable AuthPI identity server."""


def main() -> None:
    from app.observability import configure_logging

    def run() -> None:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        cli()

    run_main(run)


if __name__ == "__main__":
    main()
