"""Webhook delivery benchmark: latency (event committed -> receiver got it) and burst throughput.

Runs the relay as a real `authpi worker` process on a scratch database, a receiver in this process.

    AUTHPI_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/webhooks.py

(default: that URL). Options: --latency-events N --burst-events N --subjects N --workers N
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ruff: noqa: E402 - the project root goes on sys.path before the app's imports below
from app.account.service import create_account
from app.core.auth import Principal
from app.core.db import Database, to_asyncpg_dsn, with_database
from app.core.migrations import upgrade
from app.events.service import record
from app.webhooks import service
from app.webhooks.schemas import WebhookCreate, WebhookUpdate

SERVER_KEY = "bench-server-key-not-secret-0123456789abcdef"


class Receiver:
    """A uvicorn receiver in its own process (a threaded server in this one would measure the GIL).
    It records when each webhook-id first arrived (time.time()); /arrivals returns them."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        self.proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)])
        self.arrivals: dict[str, float] = {}
        self.count = 0
        import httpx

        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/arrivals", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise SystemExit("receiver did not start")

    async def refresh(self) -> None:
        data = (await self.http.get("/arrivals")).json()
        self.arrivals, self.count = data["arrivals"], data["count"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_receiver(port: int) -> None:
    import json

    import uvicorn

    arrivals: dict[str, float] = {}
    count = 0

    async def app(scope: dict, receive: object, send: object) -> None:  # a bare ASGI app
        nonlocal count
        if scope["type"] != "http":
            return
        now = time.time()
        more = True
        while more:
            message = await receive()  # type: ignore[operator]
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            headers = dict(scope["headers"])
            arrivals.setdefault(headers[b"webhook-id"].decode(), now)
            count += 1
            body = b""
            status = 204
        else:
            body = json.dumps({"arrivals": arrivals, "count": count}).encode()
            status = 200
        await send({"type": "http.response.start", "status": status,  # type: ignore[operator]
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def wait_for(receiver: Receiver, ids: list[str], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        await receiver.refresh()
        if all(i in receiver.arrivals for i in ids):
            return
        await asyncio.sleep(0.002 if len(ids) == 1 else 0.1)
    raise SystemExit(f"timeout: {sum(i in receiver.arrivals for i in ids)}/{len(ids)} arrived")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-events", type=int, default=200)
    parser.add_argument("--burst-events", type=int, default=2000)
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="authpi worker processes")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
    else:
        asyncio.run(bench(args))


async def bench(args: argparse.Namespace) -> None:

    base = os.environ.get("AUTHPI_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"authpi_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(to_asyncpg_dsn(base))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(base, name)
    procs: list[subprocess.Popen[bytes]] = []
    db = Database(url, pool_size=10)
    receiver: Receiver | None = None
    try:
        await asyncio.to_thread(upgrade, url)
        receiver = Receiver()
        async with db.unit_of_work() as session:
            account, key, _ = await create_account(session, "bench")
            principal = Principal(type="api_key", account_id=account.id, account_level=True, key_id=key.id)
            webhook, _ = await service.create_webhook(
                session, account.id, WebhookCreate(name="bench", url=receiver.url,
                                                   auth={"type": "signature"}, events=["user.updated"]),
                principal, server_key=SERVER_KEY, allow_private=True)
        env = {**os.environ, "AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": SERVER_KEY,
               "AUTHPI_WEBHOOKS_ALLOW_PRIVATE": "true", "AUTHPI_ENV": "test"}
        authpi = str(Path(sys.executable).parent / "authpi")
        procs = [subprocess.Popen([authpi, "worker"], env=env, stderr=subprocess.DEVNULL)
                 for _ in range(args.workers)]

        async def emit(i: int, subjects: int) -> tuple[str, float]:
            async with db.unit_of_work() as session:
                event = await record(session, type="user.updated", account_id=account.id,
                                     subject={"type": "user", "id": f"usr_{i % subjects}"}, data={"n": i},
                                     auth={"type": "system", "actor": "bench"})
            return event.id, time.time()  # committed

        # Warm up: the worker is up and connected.
        warm, _ = await emit(-1, 1)
        await wait_for(receiver, [warm], 60)

        # 1. Latency: one event at a time, spaced, so nothing queues.
        latencies = []
        for i in range(args.latency_events):
            event_id, committed = await emit(i, args.subjects)
            await wait_for(receiver, [event_id], 30)
            latencies.append((receiver.arrivals[event_id] - committed) * 1000)
            await asyncio.sleep(0.005)

        # 2. Live burst: as fast as 8 concurrent writers can commit, spread over N subjects.
        ids: list[str] = []

        async def burst(count: int) -> float:
            queue = iter(range(count))

            async def writer() -> None:
                for i in queue:
                    ids.append((await emit(i, args.subjects))[0])

            t0 = time.time()
            await asyncio.gather(*(writer() for _ in range(8)))
            return t0

        t0 = await burst(args.burst_events)
        t_emitted = time.time()
        await wait_for(receiver, ids, 300)
        t_done = max(receiver.arrivals[i] for i in ids)
        to_delivery = [receiver.arrivals[i] - t0 for i in ids]
        live = (len(ids), t_emitted - t0, t_done - t0, to_delivery)

        # 3. Backlog drain: the endpoint paused while the burst is committed, then resumed.
        async def set_status(status: str) -> None:
            async with db.unit_of_work() as session:
                hook = await service.get_webhook(session, account.id, webhook.id, lock=True)
                await service.update_webhook(session, hook, WebhookUpdate(status=status), principal,
                                             server_key=SERVER_KEY, allow_private=True, grace_seconds=0)

        async def drain_backlog() -> tuple[int, float]:
            await set_status("paused")
            ids.clear()
            await burst(args.burst_events)
            t_resume = time.time()
            await set_status("active")
            await wait_for(receiver, ids, 300)
            return len(ids), max(receiver.arrivals[i] for i in ids) - t_resume

        # First on this young table as it stands (statistics possibly stale), then after ANALYZE,
        # the steady state autovacuum keeps a long-lived table in.
        cold = await drain_backlog()
        analyze = await asyncpg.connect(to_asyncpg_dsn(url))
        await analyze.execute("ANALYZE webhook_deliveries")
        await analyze.close()
        warm = await drain_backlog()

        n, emit_s, done_s, to_delivery = live
        print(f"webhook delivery benchmark: {args.workers} `authpi worker` process(es) (relay defaults: "
              f"4 batches x 50, 8 connections per origin), receiver on 127.0.0.1 in the bench process")
        print(f"  latency, event committed -> receiver got it, {len(latencies)} spaced events: "
              f"p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, "
              f"max {max(latencies):.1f} ms")
        print(f"  live burst, {n} events over {args.subjects} subjects by 8 writers: committed in "
              f"{emit_s:.2f} s ({n / emit_s:.0f} events/s); last delivery {done_s:.2f} s after the first "
              f"commit ({n / done_s:.0f} deliveries/s); time to delivery p50 {pct(to_delivery, 50):.2f} s, "
              f"p99 {pct(to_delivery, 99):.2f} s")
        for label, (count, seconds) in (("stale statistics", cold), ("after ANALYZE", warm)):
            print(f"  backlog drain ({label}), {count} pending deliveries over {args.subjects} subjects: "
                  f"{seconds:.2f} s ({count / seconds:.0f} deliveries/s)")
        print(f"  duplicates received: {receiver.count - len(receiver.arrivals)}")
    finally:
        if receiver is not None:
            receiver.stop()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    main()
