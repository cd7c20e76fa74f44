"""Flat at scale: p99 latencies on a database seeded with many tenants, as ratios to the same
measurements on an (almost) empty database, in the same run.

    python bench/scale.py                                   # full size: 10k issuers, 1M keys, 10M events
    python bench/scale.py --issuers 1000 --keys 100000 --events 1000000    # smaller, same shape
    AUTHPI_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/scale.py

Two scratch databases on one server (the embedded PostgreSQL under .authpi/bench unless
AUTHPI_DATABASE_URL names one), both migrated. In each, one `authpi serve` process and one measured
tenant created through the API exactly alike: an account, an issuer with an M2M client, and
--tenant-events events over the last year. The "scaled" database then gets, by COPY, the filler:
--issuers accounts each with an issuer, --keys account API keys (all sharing one argon2 hash, so
any of them verifies with one known secret) and --events events spread over the tenants and a year.

Measured sequentially (one connection, --requests each, after a warm-up), p50 and p99 per request:
`GET /v1/me` warm (one cached key) and cold (a different key each time, looked up and argon2-checked),
discovery, JWKS, `client_credentials`, the first and a deep page of events.list, and
events.aggregate over one month. Target: every p99 within 1.5x of the empty database.
"""

# ruff: noqa: E402 - the project root goes on sys.path before the app's imports below
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.db import database_name, to_asyncpg_dsn, with_database
from app.core.ids import _encode

SERVER_KEY = "bench-server-key-not-secret-0123456789abcdef"
AUTHPI = str(Path(sys.executable).with_name("authpi"))
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
EVENT_TYPES = ["user.created", "user.updated", "api-key.created", "organization.created",
               "organization.membership.created", "client.created", "user.deleted", "api-key.revoked"]
CHUNK = 50_000


def id_at(prefix: str, ms: int) -> str:
    """A time-sortable id minted at `ms` (as app.core.ids.new_id would have then)."""
    return f"{prefix}_{_encode(ms, 10)}{_encode(random.getrandbits(79), 16)}"


def server_url() -> str:
    url = os.environ.get("AUTHPI_DATABASE_URL")
    if url:
        return url
    from app.core.db import start_embedded_postgres

    return start_embedded_postgres(ROOT / ".authpi" / "bench")


async def create_database(base: str, label: str) -> str:
    name = f"authpi_scale_{label}_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(to_asyncpg_dsn(with_database(base, "postgres")))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(base, name)


async def drop_database(base: str, url: str) -> None:
    conn = await asyncpg.connect(to_asyncpg_dsn(with_database(base, "postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')
    finally:
        await conn.close()


# -- the server -----------------------------------------------------------------------------------

class Server:
    def __init__(self, url: str, port: int) -> None:
        self.url = url
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(ROOT / ".authpi" / f"scale-{port}.log", "w")  # noqa: SIM115
        env = {**os.environ, "AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": SERVER_KEY,
               "AUTHPI_ENV": "test", "AUTHPI_PUBLIC_URL": self.base, "AUTHPI_ACCESS_LOG": "false",
               "AUTHPI_WEBHOOKS_RELAY_ENABLED": "false", "AUTHPI_AUTH_FAIL_LIMIT": "1000000000",
               "AUTHPI_ARGON2_MAX_PENDING": "64"}
        self.proc = subprocess.Popen([AUTHPI, "serve", "--port", str(port)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the measured tenant (through the API), and the filler (COPY) --------------------------------

def account_create(url: str) -> tuple[str, str, str]:
    env = {**os.environ, "AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": SERVER_KEY, "AUTHPI_ENV": "test"}
    out = subprocess.run([AUTHPI, "account", "create", "--name", "measured"], env=env, capture_output=True,
                         text=True, check=True).stdout
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return exports["AUTHPI_ACCOUNT_ID"], exports["AUTHPI_KEY_ID"], exports["AUTHPI_KEY_SECRET"]


async def measured_tenant(server: Server) -> dict[str, Any]:
    account_id, key_id, secret = account_create(server.url)
    auth = (key_id, secret)
    async with httpx.AsyncClient(base_url=server.base, auth=auth, timeout=30) as http:
        created = await http.post(f"/v1/accounts/{account_id}/issuers", json={"name": "measured"})
        issuer = created.json()["data"]
        client = (await http.post(f"/v1/accounts/{account_id}/issuers/{issuer['id']}/clients", json={
            "name": "svc", "settings": {"scopes": ["invoices:read"], "openid": {
                "application_type": "service", "grant_types": ["client_credentials"]}}})).json()["data"]
    return {"account_id": account_id, "key_id": key_id, "secret": secret, "issuer_id": issuer["id"],
            "client_id": client["id"], "client_secret": client["secret"]}


async def template(conn: asyncpg.Connection, table: str, where: str, *args: Any) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT * FROM {table} WHERE {where} LIMIT 1", *args)
    assert row is not None, table
    return dict(row)


async def copy_rows(conn: asyncpg.Connection, table: str, columns: list[str], rows: Any) -> int:
    total = 0
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            await conn.copy_records_to_table(table, records=batch, columns=columns)
            total += len(batch)
            batch = []
    if batch:
        await conn.copy_records_to_table(table, records=batch, columns=columns)
        total += len(batch)
    return total


def event_rows(tenants: list[tuple[str, str]], count: int, now: int) -> Any:
    for _ in range(count):
        account_id, issuer_id = random.choice(tenants)
        ts = now - random.randrange(YEAR_MS)
        kind = random.choice(EVENT_TYPES)
        subject = json.dumps({"type": "user", "id": id_at("usr", ts)})
        yield (id_at("evt", ts), account_id, issuer_id, None, None, None, kind,
               f"/v1/accounts/{account_id}/issuers/{issuer_id}", ts, subject, "{}",
               '{"type": "api_key"}', None, None, False)


EVENT_COLUMNS = ["id", "account_id", "issuer_id", "org_id", "user_id", "client_id", "type", "source",
                 "timestamp", "subject", "data", "auth", "trigger", "trace", "deliverable"]


async def seed(url: str, tenant: dict[str, Any], *, issuers: int, keys: int, events: int,
               tenant_events: int, cold_keys: int) -> list[str]:
    """Filler rows by COPY; returns key ids that verify with the tenant's account-key secret."""
    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    started = time.perf_counter()
    try:
        now = int(time.time() * 1000)
        account = await template(conn, "accounts", "id = $1", tenant["account_id"])
        issuer = await template(conn, "issuers", "id = $1", tenant["issuer_id"])
        key = await template(conn, "api_keys", "id = $1", tenant["key_id"])
        # The measured tenant's own events, alike in both databases.
        await copy_rows(conn, "events", EVENT_COLUMNS,
                        event_rows([(tenant["account_id"], tenant["issuer_id"])], tenant_events, now))
        # Keys of the measured account sharing its key's hash: the cold verifications' pool.
        key_cols = list(key)
        cold: list[str] = []

        def keys_for(owners: list[tuple[str, str]], n: int, out: list[str] | None) -> Any:
            for i in range(n):
                account_id, org_id = owners[i % len(owners)]
                ts = now - random.randrange(YEAR_MS)
                row = dict(key, id=id_at("key", ts), account_id=account_id, name=f"k{i}", created_at=ts,
                           updated_at=None)
                if "org_id" in row and key["org_id"] == account["org_id"]:
                    row["org_id"] = org_id
                if out is not None and len(out) < cold_keys:
                    out.append(row["id"])
                yield tuple(row[c] for c in key_cols)

        await copy_rows(conn, "api_keys", key_cols,
                        keys_for([(tenant["account_id"], account["org_id"])], cold_keys, cold))
        if issuers:
            acc_cols, iss_cols = list(account), list(issuer)
            tenants: list[tuple[str, str]] = []
            owners: list[tuple[str, str]] = []
            acc_rows, iss_rows = [], []
            for i in range(issuers):
                ts = now - random.randrange(YEAR_MS)
                acc = dict(account, id=id_at("acc", ts), org_id=id_at("org", ts), name=f"tenant-{i}",
                           created_at=ts, updated_at=None)
                iss = dict(issuer, id=id_at("i", ts), account_id=acc["id"], name=f"issuer-{i}",
                           created_at=ts, updated_at=None)
                acc_rows.append(tuple(acc[c] for c in acc_cols))
                iss_rows.append(tuple(iss[c] for c in iss_cols))
                tenants.append((acc["id"], iss["id"]))
                owners.append((acc["id"], acc["org_id"]))
            await copy_rows(conn, "accounts", acc_cols, acc_rows)
            await copy_rows(conn, "issuers", iss_cols, iss_rows)
            filler_cold: list[str] = []
            await copy_rows(conn, "api_keys", key_cols, keys_for(owners, keys, filler_cold))
            cold = filler_cold  # cold verifications hit keys spread over the whole table
            await copy_rows(conn, "events", EVENT_COLUMNS, event_rows(tenants, events, now))
        await conn.execute("ANALYZE")
        sizes = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM accounts) a, (SELECT count(*) FROM api_keys) k, "
            "(SELECT count(*) FROM events) e, pg_size_pretty(pg_database_size(current_database())) s")
        print(f"  seeded {database_name(url)}: {sizes['a']} accounts, {sizes['k']} keys, "
              f"{sizes['e']} events, {sizes['s']} in {time.perf_counter() - started:.0f}s", flush=True)
    finally:
        await conn.close()
    random.shuffle(cold)
    return cold


# -- the measurements -----------------------------------------------------------------------------

async def timed(http: httpx.AsyncClient, n: int, make: Any, expect: int = 200) -> list[float]:
    out = []
    for i in range(n):
        method, path, kwargs = make(i)
        start = time.perf_counter()
        r = await http.request(method, path, **kwargs)
        out.append((time.perf_counter() - start) * 1000)
        if r.status_code != expect:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
    return out


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(server: Server, tenant: dict[str, Any], cold: list[str], requests: int,
                  deep_pages: int, cold_offset: int = 0) -> dict[str, list[float]]:
    a, i = tenant["account_id"], tenant["issuer_id"]
    auth = (tenant["key_id"], tenant["secret"])
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
        disco = (await http.get(f"/{i}/.well-known/openid-configuration")).json()
        jwks = disco["jwks_uri"].replace(server.base, "")
        page = (await http.get(f"/v1/accounts/{a}/events", params={"limit": 20}, auth=auth)).json()
        cursor = None
        for _ in range(deep_pages):
            page = (await http.get(f"/v1/accounts/{a}/events",
                                   params={"limit": 20, **({"cursor": cursor} if cursor else {})},
                                   auth=auth)).json()
            cursor = page["next_cursor"]
        now = int(time.time() * 1000)
        month = {"after": now - 60 * DAY_MS, "before": now - 30 * DAY_MS}
        cc = {"grant_type": "client_credentials", "scope": "invoices:read"}
        scenarios: dict[str, Any] = {
            "/v1/me warm": lambda _: ("GET", "/v1/me", {"auth": auth}),
            "/v1/me cold": lambda n: ("GET", "/v1/me", {"auth": (cold[(cold_offset + n) % len(cold)],
                                                                          tenant["secret"])}),
            "discovery": lambda _: ("GET", f"/{i}/.well-known/openid-configuration", {}),
            "JWKS": lambda _: ("GET", jwks, {}),
            "client_credentials": lambda _: ("POST", f"/{i}/token", {
                "data": cc, "auth": (tenant["client_id"], tenant["client_secret"])}),
            "events.list first page": lambda _: ("GET", f"/v1/accounts/{a}/events", {
                "params": {"limit": 20}, "auth": auth}),
            f"events.list page {deep_pages + 1}": lambda _: ("GET", f"/v1/accounts/{a}/events", {
                "params": {"limit": 20, "cursor": cursor}, "auth": auth}),
            "events.aggregate, a month": lambda _: ("GET", f"/v1/accounts/{a}/events/aggregate", {
                "params": month, "auth": auth}),
        }
        for name, make in scenarios.items():
            n = min(requests, len(cold)) if name == "/v1/me cold" else requests
            if name != "/v1/me cold":
                await timed(http, max(5, n // 10), make)  # warm-up
            results[name] = await timed(http, n, make)
    return results


async def main_async(args: argparse.Namespace) -> None:
    base = server_url()
    empty_url = await create_database(base, "empty")
    full_url = await create_database(base, "full")
    from app.core.migrations import upgrade

    servers: list[Server] = []
    try:
        print(f"Scale benchmark: {args.issuers} issuers, {args.keys} API keys, {args.events} events "
              f"(measured tenant: {args.tenant_events} events), {args.rounds} interleaved rounds of "
              f"{args.requests} sequential requests per figure",
              flush=True)
        setups: dict[str, tuple[Server, dict[str, Any], list[str]]] = {}
        for label, url, filler in (("empty", empty_url, False), ("scaled", full_url, True)):
            await asyncio.to_thread(upgrade, url)
            server = Server(url, free_port())
            servers.append(server)
            tenant = await measured_tenant(server)
            cold = await seed(url, tenant, issuers=args.issuers if filler else 0,
                              keys=args.keys if filler else 0, events=args.events if filler else 0,
                              tenant_events=args.tenant_events, cold_keys=args.requests * args.rounds)
            setups[label] = (server, tenant, cold)
        # Interleaved rounds: both servers see the same drift in the machine's other load.
        measured: dict[str, dict[str, list[float]]] = {"empty": {}, "scaled": {}}
        for round_no in range(args.rounds):
            for label, (server, tenant, cold) in setups.items():
                got = await measure(server, tenant, cold, args.requests, args.deep_pages,
                                    cold_offset=round_no * args.requests)
                for name, values in got.items():
                    measured[label].setdefault(name, []).extend(values)
        print(f"\n  {'p99 (p50) in ms':<28} {'empty':>18} {'scaled':>18} {'p99 ratio':>10}")
        worst = 0.0
        for name in measured["empty"]:
            e, s = measured["empty"][name], measured["scaled"][name]
            ratio = p(s, 0.99) / p(e, 0.99)
            worst = max(worst, ratio)
            print(f"  {name:<28} {p(e, .99):8.2f} ({statistics.median(e):6.2f}) "
                  f"{p(s, .99):8.2f} ({statistics.median(s):6.2f}) {ratio:9.2f}x")
        print(f"\nTarget: every p99 within 1.5x of the empty database; worst {worst:.2f}x.")
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
        if not args.keep:
            await drop_database(base, empty_url)
            await drop_database(base, full_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issuers", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tenant-events", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=200, help="per figure and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deep-pages", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
