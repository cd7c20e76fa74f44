"""What the request middleware (request id, metrics, JSON access log) costs per request, in process.

    python bench/observability.py [--requests 20000] [--rounds 5]

Calls a bare FastAPI app (one JSON route) directly through ASGI, with and without
`RequestObservability` around it (the access log formatted as JSON and written to /dev/null, as in
production), interleaved rounds, and prints the median per-request times and the overhead as a
ratio to the bare app. No network and no database, so the figure is steadier than the HTTP
benchmarks on a shared machine; the HTTP benchmarks' requests cost several times the bare app's.
"""

# ruff: noqa: E402 - the project root goes on sys.path before the app's imports below
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI

from app.observability.logs import JsonFormatter, configure_logging
from app.observability.requests import RequestObservability


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/accounts/{account_id}")
    async def me(account_id: str) -> dict[str, Any]:
        return {"data": {"id": account_id, "type": "api_key"}}

    return app


async def run(app: Any, n: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/v1/accounts/acc_01jbenchbenchbenchbenchbenc", "raw_path": b"",
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 5555),
             "headers": [(b"host", b"127.0.0.1"), (b"authorization", b"Basic eDp5")]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope, headers=list(scope["headers"])), receive, send)
    return (time.perf_counter() - start) / n * 1e6


async def main_async(args: argparse.Namespace) -> None:
    configure_logging("info", "json")  # as `authpi serve` does, then to /dev/null instead of stderr
    handler = logging.FileHandler("/dev/null")
    handler.setFormatter(JsonFormatter())
    logging.getLogger().handlers[:] = [handler]
    bare = bare_app()
    wrapped = RequestObservability(bare_app())
    quiet = RequestObservability(bare_app(), access_log_enabled=False)
    for app in (bare, wrapped, quiet):
        await run(app, 500)
    times: dict[str, list[float]] = {"bare": [], "with observability": [], "without the access log": []}
    for _ in range(args.rounds):
        times["bare"].append(await run(bare, args.requests))
        times["with observability"].append(await run(wrapped, args.requests))
        times["without the access log"].append(await run(quiet, args.requests))
    base = statistics.median(times["bare"])
    print(f"Request middleware cost, {args.rounds} interleaved rounds of {args.requests} in-process requests")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<26} {median:7.1f} us/request  ({median / base:4.2f}x bare, "
              f"+{median - base:5.1f} us; rounds {min(values):.1f}-{max(values):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
