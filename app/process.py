"""The `authpi` process: configuration checks, clean stops, the embedded database's lifetime.

- A configuration mistake is one line on stderr and exit code 2 (`ConfigError`), never a traceback:
  an invalid setting, a missing production secret, a bad URL, a database that cannot be reached.
- `serve` stops cleanly on SIGTERM and SIGINT: uvicorn stops accepting, drains the requests in
  flight, runs the app's shutdown (batched events flushed, relay stopped), and then the embedded
  PostgreSQL this process started or joined is released (stopped with its last user).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit

import asyncpg
from pydantic import ValidationError

from app.config import Settings, get_settings
from app.core.db import to_asyncpg_dsn
from app.email.transport import check_email_settings


class ConfigError(Exception):
    """A configuration mistake the operator must fix: one line, exit code 2."""


def fail(message: str) -> NoReturn:
    print(f"authpi: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def redact_url(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def load_settings() -> Settings:
    """The settings, or a ConfigError naming the first invalid variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "AUTHPI_" + str(error["loc"][0]).upper() if error.get("loc") else "a setting"
        raise ConfigError(f"{name} is invalid: {error['msg']}") from None


def check_settings(settings: Settings) -> None:
    """What can be checked before anything starts."""
    if settings.env == "production" and not settings.secret_key:
        raise ConfigError("AUTHPI_SECRET_KEY is required when AUTHPI_ENV=production "
                          "(e.g. `openssl rand -base64 48`; the same on every replica)")
    if settings.database_url is not None:
        parts = urlsplit(settings.database_url)
        if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg") or not parts.hostname \
                and "host=" not in parts.query:
            raise ConfigError(f"AUTHPI_DATABASE_URL must be postgresql://user:password@host:port/database, "
                              f"got {redact_url(settings.database_url)!r}")
        try:
            parts.port  # noqa: B018 - raises on a non-numeric port
        except ValueError:
            raise ConfigError("AUTHPI_DATABASE_URL has an invalid port") from None
    problem = check_email_settings(settings)
    if problem:
        raise ConfigError(problem)
    if settings.public_url is not None:
        parts = urlsplit(settings.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"AUTHPI_PUBLIC_URL must be an origin such as https://id.example.com, "
                              f"got {settings.public_url!r}")


def check_database(url: str, timeout: float = 10.0) -> None:
    """Connect once, so an unreachable database is a clear message rather than a traceback."""
    async def probe() -> None:
        conn = await asyncpg.connect(to_asyncpg_dsn(url), timeout=timeout)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 - every failure here is the operator's to fix
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot reach the database at {redact_url(url)}: {reason}") from None


def run_main(cli: Callable[[], Any]) -> None:
    """Run the CLI; a ConfigError anywhere below is one line and exit code 2."""
    try:
        cli()
    except ConfigError as exc:
        fail(str(exc))


# -- the embedded database's lifetime ------------------------------------------------------------

def release_embedded_postgres() -> None:
    """Drop this process's handle on every embedded server it started or joined; the last handle
    stops the server. Idempotent (embedded_postgres also does it at a normal interpreter exit)."""
    module = sys.modules.get("embedded_postgres.postgres_server")
    if module is None:
        return
    for server in list(module.PostgresServer._instances.values()):
        server._cleanup()


def serve_uvicorn(config: Any) -> None:
    """Run a uvicorn server until SIGTERM/SIGINT, then release the embedded database.

    uvicorn drains in-flight requests and runs the app's shutdown on either signal, then re-raises
    the signal; with the default SIGTERM disposition that re-raise would kill the process before
    the embedded PostgreSQL is released, so the signals are absorbed here once uvicorn is done.
    """
    import uvicorn

    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if config.workers and config.workers > 1:
            from uvicorn.supervisors import Multiprocess

            sock = config.bind_socket()
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        release_embedded_postgres()
