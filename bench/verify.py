"""`GET /v1/me` verification benchmark, as ratios to a bare FastAPI route measured in the same run.

    python bench/verify.py                  # embedded Postgres under .authpi/bench
    AUTHPI_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/verify.py

Starts, on 127.0.0.1, one uvicorn process per server (same uvicorn settings: one worker, uvloop,
httptools, no access log; pinned to CPU 0 when `taskset` exists) against a fresh scratch database,
and drives them with `wrk` (`apt-get install -y wrk`; on the other CPUs), which is fast enough not
to be the bottleneck. Bare, warm and flood runs are interleaved for --rounds rounds and the
summary takes the median round, since other load on the machine drifts:

1. bare:  a FastAPI app with one route returning a small JSON body (the baseline);
2. warm:  `/v1/me` with one organization key, warm in the cache (events batched as in production);
3. cold:  `/v1/me` on a server with `AUTHPI_KEY_CACHE_TTL_SECONDS=0`, so every request is a first
          verification (database lookup + argon2id), round-robin over many keys;
4. flood: the warm run again while a second wrk floods wrong secrets for the same key id and
          random unknown key ids, once with the default throttles and once with them disabled
          (every wrong secret reaches argon2, every unknown id the database).

Options: --duration S (default 8) --connections N (default 32) --keys N (cold run, default 64)
--flood-connections N (default 256: a throttled caller waits AUTHPI_AUTH_THROTTLE_DELAY_SECONDS
before each 429, so a closed-loop flood needs many connections to send thousands of requests).
"""

# ruff: noqa: E402 - the project root goes on sys.path before the app's imports below
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER_KEY = "bench-server-key-not-secret-0123456789abcdef"
AUTHPI = str(Path(sys.executable).with_name("authpi"))


# -- the bare baseline ----------------------------------------------------------------------------

def bare_app():  # noqa: ANN201 - built only in the --bare-server subprocess
    from fastapi import FastAPI

    app = FastAPI()
    body = {"data": {"type": "api_key", "accounts": [], "organizations": [
        {"org_id": "org_01jbenchbenchbenchbenchbenc", "scopes": ["invoices:read"]}]}}

    @app.get("/bare")
    async def bare() -> dict:
        return body

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


# -- database and fixtures ------------------------------------------------------------------------

def server_url() -> str:
    url = os.environ.get("AUTHPI_DATABASE_URL")
    if url:
        return url
    from app.core.db import start_embedded_postgres

    return start_embedded_postgres(ROOT / ".authpi" / "bench")


async def create_database(base: str) -> str:
    import asyncpg

    from app.core.db import to_asyncpg_dsn, with_database

    name = f"authpi_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(to_asyncpg_dsn(with_database(base, "postgres")))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(base, name)


async def drop_database(base: str, url: str) -> None:
    import asyncpg

    from app.core.db import database_name, to_asyncpg_dsn, with_database

    conn = await asyncpg.connect(to_asyncpg_dsn(with_database(base, "postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')
    finally:
        await conn.close()


async def make_keys(url: str, count: int) -> list[tuple[str, str]]:
    """An account, an issuer, an organization and `count` organization keys."""
    from app.account.service import create_account
    from app.api_key.service import create_api_key
    from app.core.db import Database
    from app.core.ids import new_id, now_ms
    from app.models.issuer import Issuer
    from app.models.organization import Organization

    db = Database(url, pool_size=2)
    try:
        async with db.unit_of_work() as session:
            account, _, _ = await create_account(session, "bench")
            issuer = Issuer(id=new_id("i"), account_id=account.id, name="bench", status="active",
                            created_at=now_ms())
            session.add(issuer)
            await session.flush()
            org = Organization(id=new_id("org"), account_id=account.id, issuer_id=issuer.id, name="Globex",
                               status="active", org_type="standard", created_at=now_ms())
            session.add(org)
            await session.flush()
            keys = []
            for i in range(count):
                key, secret = await create_api_key(
                    session, account_id=account.id, owner_kind="organization", issuer_id=issuer.id,
                    org_id=org.id, name=f"bench-{i}", restrictions={"scopes": ["invoices:read"]},
                    auth={"type": "system", "actor": "bench"})
                keys.append((key.id, secret))
        return keys
    finally:
        await db.dispose()


# -- servers --------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# On a multi-core machine the servers run on CPU 0 and the load generators on the others, so wrk
# never competes with the server it measures.
PIN = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
SERVER_CPUS = ["taskset", "-c", "0"] if PIN else []
LOAD_CPUS = ["taskset", "-c", f"1-{(os.cpu_count() or 2) - 1}"] if PIN else []


class Server:
    def __init__(self, cmd: list[str], env: dict[str, str], port: int) -> None:
        cmd = [*SERVER_CPUS, *cmd]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read()[-3000:].decode(errors='replace')}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def authpi_server(url: str, **settings: str) -> Server:
    port = free_port()
    env = {"AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": SERVER_KEY, "AUTHPI_LOG_LEVEL": "warning",
           "AUTHPI_WEBHOOKS_RELAY_ENABLED": "false"}
    env.update({f"AUTHPI_{k.upper()}": v for k, v in settings.items()})
    return Server([AUTHPI, "serve", "--port", str(port)], env, port)


def bare_server() -> Server:
    port = free_port()
    return Server([sys.executable, __file__, "--bare-server", "--port", str(port)], {}, port)


# -- load -----------------------------------------------------------------------------------------

@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(value)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


# wrk's Lua: a per-thread list of Authorization headers used round-robin.
ROUND_ROBIN = """
local headers = { %s }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "%s", { ["Authorization"] = headers[(i %% #headers) + 1] })
end
"""

# Wrong secrets for a real key id, alternating with random well-formed unknown ids.
FLOOD = """
local real = "%s"
local alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
math.randomseed(os.time())
local function rnd(n)
  local t = {}
  for j = 1, n do local k = math.random(1, 32); t[j] = alphabet:sub(k, k) end
  return table.concat(t)
end
local function b64(data)
  local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((data:gsub('.', function(x)
    local r, byte = '', x:byte()
    for i = 8, 1, -1 do r = r .. (byte %% 2 ^ i - byte %% 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%%d%%d%%d?%%d?%%d?%%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data %% 3 + 1])
end
local n = 0
request = function()
  n = n + 1
  local cred
  if n %% 2 == 0 then cred = real .. ":sk_wrong_" .. rnd(20)
  else cred = "key_01" .. rnd(24) .. ":sk_" .. rnd(20) end
  return wrk.format("GET", "/v1/me", { ["Authorization"] = "Basic " .. b64(cred) })
end
"""


def basic(key_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()


def wrk(url: str, path: str, headers: list[str] | None, duration: int, connections: int,
        script: str | None = None) -> tuple[Result, subprocess.Popen[str] | None]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if script is None:
            script = ROUND_ROBIN % (", ".join(f'"{h}"' for h in (headers or [""])), path)
        f.write(script)
        lua = f.name
    out = subprocess.run([*LOAD_CPUS, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", lua,
                          url + path],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(lua)
    return parse_wrk(out), None


def parse_wrk(out: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Result(rps, p50, p99, total, int(bad.group(1)) if bad else 0)


def flood_while(url: str, valid: list[str], real_key: str, duration: int, connections: int,
                flood_connections: int) -> tuple[Result, Result]:
    """The valid client and the flood at once (two wrk processes)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(FLOOD % real_key)
        flood_lua = f.name
    flood = subprocess.Popen([*LOAD_CPUS, "wrk", "-t1", f"-c{flood_connections}", f"-d{duration + 2}s",
                              "--latency", "-s",
                              flood_lua, url + "/v1/me"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(1.0)  # the flood is under way before the measured window opens
    good, _ = wrk(url, "/v1/me", valid, duration, connections)
    out, _ = flood.communicate()
    os.unlink(flood_lua)
    return good, parse_wrk(out)


def first_verifications(url: str, keys: list[tuple[str, str]]) -> list[float]:
    """Latency (ms) of each key's very first request, one at a time."""
    times = []
    with httpx.Client(base_url=url) as c:
        for key_id, secret in keys:
            t = time.perf_counter()
            r = c.get("/v1/me", auth=(key_id, secret))
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return times


def single_requests(url: str, path: str, n: int = 50) -> list[float]:
    times = []
    with httpx.Client(base_url=url) as c:
        for _ in range(n):
            t = time.perf_counter()
            c.get(path)
            times.append((time.perf_counter() - t) * 1000)
    return times


def line(name: str, r: Result, base: Result) -> str:
    return (f"  {name:<36} {r.rps:>8.0f} req/s ({r.rps / base.rps:4.2f}x)  p50 {r.p50_ms:6.2f} ms "
            f"({r.p50_ms / base.p50_ms:4.2f}x)  p99 {r.p99_ms:7.2f} ms ({r.p99_ms / base.p99_ms:4.2f}x)"
            f"  non-2xx {r.non_2xx}/{r.requests}")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bare/warm/flood rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keys", type=int, default=64)
    parser.add_argument("--flood-connections", type=int, default=256)
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.bare_server:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return

    from app.core.migrations import upgrade

    pg_base = server_url()
    url = asyncio.run(create_database(pg_base))
    servers: list[Server] = []
    try:
        upgrade(url)
        keys = asyncio.run(make_keys(url, args.keys + 1))
        main_key, cold_keys = keys[0], keys[1:]
        valid = [basic(*main_key)]
        d, c = args.duration, args.connections

        bare = bare_server()
        servers.append(bare)
        warm_srv = authpi_server(url)
        servers.append(warm_srv)
        # First verification of fresh keys, one at a time (argon2id + lookup + a synchronous event).
        firsts = first_verifications(warm_srv.url, cold_keys[: min(20, len(cold_keys))])
        bare_single = single_requests(bare.url, "/bare")
        wrk(bare.url, "/bare", valid, 2, c)  # warm-up
        wrk(warm_srv.url, "/v1/me", valid, 2, c)

        # Interleaved rounds: the machine's other load drifts, so each ratio compares runs made
        # seconds apart, and the report takes the median round.
        rounds = []
        for _ in range(args.rounds):
            b, _ = wrk(bare.url, "/bare", valid, d, c)
            w, _ = wrk(warm_srv.url, "/v1/me", valid, d, c)
            fg, fb = flood_while(warm_srv.url, valid, main_key[0], d, c, args.flood_connections)
            rounds.append((b, w, fg, fb))

        open_srv = authpi_server(url, auth_fail_limit="1000000000", auth_fail_address_limit="1000000000")
        servers.append(open_srv)
        wrk(open_srv.url, "/v1/me", valid, 2, c)
        open_warm, _ = wrk(open_srv.url, "/v1/me", valid, d, c)
        open_good, open_bad = flood_while(open_srv.url, valid, main_key[0], d, c, args.flood_connections)

        cold_srv = authpi_server(url, key_cache_ttl_seconds="0", auth_fail_limit="1000000000",
                                 auth_fail_address_limit="1000000000")
        servers.append(cold_srv)
        # Below the argon2 queue cap (16), so the run measures verification, not shedding.
        cold_conns = 8
        cold_base, _ = wrk(bare.url, "/bare", valid, d, cold_conns)
        cold, _ = wrk(cold_srv.url, "/v1/me", [basic(*k) for k in cold_keys], d, cold_conns)

        print(f"\nGET /v1/me verification benchmark: {args.rounds} rounds of {d}s runs, wrk -t1, {c} "
              f"connections, one uvicorn worker each, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}")
        for i, (b, w, fg, fb) in enumerate(rounds, 1):
            print(f" round {i}")
            print(f"  {'bare FastAPI route (baseline)':<36} {b.rps:>8.0f} req/s          "
                  f"p50 {b.p50_ms:6.2f} ms          p99 {b.p99_ms:7.2f} ms")
            print(line("warm key (cache hit, events batched)", w, b))
            print(line("warm key during flood", fg, b)
                  + f"   flood p99 / warm p99 {fg.p99_ms / w.p99_ms:.2f}x")
            print(f"  {'  the flood (wrong secrets, unknown ids)':<36} {fb.requests} requests, "
                  f"{fb.rps:.0f} req/s, non-2xx {fb.non_2xx}")
        print(" throttles disabled (AUTHPI_AUTH_FAIL_[ADDRESS_]LIMIT=1e9: every wrong secret reaches "
              "argon2, every unknown id the database)")
        print(line("warm key", open_warm, rounds[-1][0]))
        print(line("warm key during flood", open_good, rounds[-1][0])
              + f"   flood p99 / warm p99 {open_good.p99_ms / open_warm.p99_ms:.2f}x")
        print(f"  {'  the flood':<36} {open_bad.requests} requests, {open_bad.rps:.0f} req/s, "
              f"non-2xx {open_bad.non_2xx}")
        print(f" cold: every request a first verification (AUTHPI_KEY_CACHE_TTL_SECONDS=0), {cold_conns} "
              f"connections over {len(cold_keys)} keys")
        print(f"  {'bare FastAPI route (baseline)':<36} {cold_base.rps:>8.0f} req/s          "
              f"p50 {cold_base.p50_ms:6.2f} ms          p99 {cold_base.p99_ms:7.2f} ms")
        print(line("cold verification (argon2id)", cold, cold_base))
        firsts.sort()
        bare_single.sort()
        print(f"  first verification of a fresh key, one at a time: median {median(firsts):.1f} ms, max "
              f"{firsts[-1]:.1f} ms (bare single request median {median(bare_single):.2f} ms)")

        thr = median([w.rps / b.rps for b, w, _, _ in rounds])
        p99 = median([w.p99_ms / b.p99_ms for b, w, _, _ in rounds])
        p50 = median([w.p50_ms / b.p50_ms for b, w, _, _ in rounds])
        flood = median([fg.p99_ms / w.p99_ms for _, w, fg, _ in rounds])
        print("\nMedian of rounds (targets: warm >= 0.60x bare throughput, warm p99 <= 2x bare p99, "
              "flood p99 <= 3x warm p99):")
        print(f"  warm throughput {thr:.2f}x bare, warm p50 {p50:.2f}x, warm p99 {p99:.2f}x bare, "
              f"p99 during the flood {flood:.2f}x the warm p99")
    finally:
        for s in servers:
            s.stop()
        asyncio.run(drop_database(pg_base, url))


if __name__ == "__main__":
    main()
