"""The `authpi` command: serve, worker, migrate; each domain's subcommands live with it."""

from __future__ import annotations

import asyncio
import os
import signal

import typer
import uvicorn
from fastapi import FastAPI

from app.account.cli import account_cli
from app.console.cli import login_link
from app.core.cli import prepare_database, say
from app.core.http_protocol import guarded_protocol
from app.core.logredact import install_log_redaction
from app.email.transport import email_problem, mailbox_dir
from app.issuer.cli import issuer_cli
from app.main import create_app
from app.observability import configure_logging
from app.process import load_settings, run_main, serve_uvicorn
from app.webhooks.relay import run_worker

cli = typer.Typer(help="authpi: a self-hostable AuthPI identity server", no_args_is_help=True)
cli.add_typer(account_cli, name="account")
cli.add_typer(issuer_cli, name="issuer")
account_cli.command("login-link")(login_link)


@cli.command()
def migrate() -> None:
    """Apply the database migrations."""
    prepare_database(load_settings())
    say("authpi: migrations applied")


@cli.command()
def serve(
    host: str = typer.Option(None, help="Listen address (default AUTHPI_HOST)"),
    port: int = typer.Option(None, help="Listen port (default AUTHPI_PORT)"),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes sharing the port"),
) -> None:
    """Migrate, then serve the admin API and every issuer's OIDC endpoints (SIGTERM/SIGINT: drain,
    flush, stop)."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings().model_copy(update=overrides)
    url = prepare_database(settings)
    common = {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
              "access_log": False, "log_config": None, "timeout_graceful_shutdown": 30,
              "http": guarded_protocol(settings.header_timeout_seconds, settings.body_timeout_seconds)}
    if workers > 1:
        # Each worker builds its app from the environment: the resolved database and the overrides.
        os.environ.update({"AUTHPI_DATABASE_URL": url, "AUTHPI_HOST": settings.host,
                           "AUTHPI_PORT": str(settings.port)})
        common["http"] = "app.core.http_protocol:SettingsGuardedProtocol"  # picklable by name
        config = uvicorn.Config("app.cli:worker_app", factory=True, workers=workers, **common)
    else:
        config = uvicorn.Config(create_app(settings, database_url=url), **common)
    problem = email_problem(settings)
    if problem:
        say(f"authpi: {problem}: creating or resending invitations is refused (409)")
    elif not settings.smtp_url:
        say(f"authpi: no AUTHPI_SMTP_URL: emails are written as .eml files under {mailbox_dir(settings)}")
    say(f"authpi: listening on http://{settings.host}:{settings.port} with {workers} worker(s) "
        f"(issuers at {settings.resolved_public_url()}/{{issuer_id}})")
    serve_uvicorn(config)


@cli.command()
def worker() -> None:
    """Run the webhook relay alone (no HTTP); any number of workers and servers may share a database."""
    settings = load_settings()
    url = prepare_database(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        say("authpi: webhook relay worker running (SIGTERM to stop)")
        await run_worker(settings, url, stop)

    asyncio.run(run())


def worker_app() -> FastAPI:
    """The app of one `serve --workers N` worker process (a uvicorn factory). The parent resolved
    the database (and started the embedded one) and passed it down in AUTHPI_DATABASE_URL."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


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
    def run() -> None:
        install_log_redaction()
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        cli()

    run_main(run)


if __name__ == "__main__":
    main()
