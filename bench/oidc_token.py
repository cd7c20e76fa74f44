"""Token endpoint benchmark, as ratios to a bare FastAPI route measured in the same run.

    python bench/token.py                   # embedded Postgres under .authpi/bench
    AUTHPI_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/token.py

One uvicorn worker per server, driven by `wrk` (apt-get install -y wrk):
1. bare:               a FastAPI POST route returning a token-shaped JSON body (the baseline);
2. client_credentials: POST /{issuer}/token with Basic client auth (ES256 JWT access token,
                       `machine.token.issued` batched);
3. refresh:            refresh_token grant with rotation (each response's refresh token is the next
                       request's: a database transaction per request, RS256 ID token, ES256 access token);
4. oidc-provider:      panva's oidc-provider (Node) with one client_credentials client, issuing RS256 JWT
                       access tokens and opaque ones (`npm ci` in bench/node first; skipped if absent).

Options: --duration S (default 8) --connections N (default 32) --rounds N (default 3).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _load_verify():  # noqa: ANN202 - the shared bench helpers, by file path
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_verify", HERE / "verify.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_verify"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_verify = _load_verify()
Result, Server, authpi_server = _verify.Result, _verify.Server, _verify.authpi_server
create_database, drop_database, free_port = _verify.create_database, _verify.drop_database, _verify.free_port
parse_wrk, server_url = _verify.parse_wrk, _verify.server_url

REDIRECT = "http://127.0.0.1/callback"
PASSWORD = "bench password 0123456789"


def bare_app():  # noqa: ANN201 - built only in the --bare-server subprocess
    from fastapi import FastAPI

    app = FastAPI()
    body = {"access_token": "x" * 600, "token_type": "Bearer", "expires_in": 3600, "scope": "invoices:read"}

    @app.post("/token")
    async def token() -> dict:
        return body

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def bare_server() -> Server:
    port = free_port()
    return Server([sys.executable, __file__, "--bare-server", "--port", str(port)], {}, port)


def wrk_post(url: str, path: str, body: str, auth: str, duration: int, connections: int) -> Result:
    script = f"""
wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "{auth}"
"""
    return _run(script, url + path, duration, connections)


def wrk_refresh(url: str, path: str, tokens: list[str], client_id: str, secret: str, duration: int,
                connections: int) -> Result:
    """Each connection holds a token; every response's refresh token replaces the one it consumed."""
    listed = ", ".join(f'"{t}"' for t in tokens)
    script = f"""
local pool = {{ {listed} }}
local thread_pool = {{}}
for i, t in ipairs(pool) do thread_pool[i] = t end
request = function()
  local t = table.remove(thread_pool, 1)
  if t == nil then t = "exhausted" end
  local body = "grant_type=refresh_token&client_id={client_id}&client_secret={secret}&refresh_token=" .. t
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/x-www-form-urlencoded"}}, body)
end
local reported = 0
response = function(status, headers, body)
  local t = string.match(body, '"refresh_token":"([^"]+)"')
  if t then table.insert(thread_pool, t) elseif reported < 5 then
    reported = reported + 1
    io.write("refresh error " .. status .. " " .. body .. "\\n")
  end
end
"""
    # A timed-out request loses its chain (the server rotated a token nobody reads): wait longer.
    return _run(script, url + path, duration, connections, timeout="30s")


def _run(script: str, target: str, duration: int, connections: int, timeout: str = "2s") -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}",
                          "--latency", "-s", lua, target],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(lua)
    for text in out.splitlines():
        if text.startswith("refresh error"):
            print(text[:300], file=sys.stderr)
    return parse_wrk(out)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def make_fixtures(url: str, server: str, count: int) -> dict:
    from app.account.service import create_account
    from app.core.db import Database

    db = Database(url, pool_size=2)
    try:
        async with db.unit_of_work() as session:
            account, key, secret = await create_account(session, "bench")
    finally:
        await db.dispose()
    a = f"/v1/accounts/{account.id}"
    async with httpx.AsyncClient(base_url=server, auth=(key.id, secret), timeout=30) as admin:
        issuer = (await admin.post(f"{a}/issuers", json={"name": "bench"})).json()["data"]
        i = f"{a}/issuers/{issuer['id']}"
        m2m = (await admin.post(f"{i}/clients", json={"name": "m2m", "settings": {
            "scopes": ["invoices:read"], "openid": {"application_type": "service",
                                                    "grant_types": ["client_credentials"]}}})).json()["data"]
        web = (await admin.post(f"{i}/clients", json={"name": "web", "settings": {
            "scopes": ["openid", "profile"], "openid": {
                "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [REDIRECT]}}})
               ).json()["data"]
        user = await admin.post(f"{i}/users", json={"username_type": "email", "username": "bench@example.com",
                                                    "password": PASSWORD})
        assert user.status_code in (200, 201), user.text
    sys.path.insert(0, str(HERE.parent))
    from tests.oidc.helpers import form_fields, pkce_pair

    tokens = []
    # One login session per chain, as with real users (a shared session row would serialise them).
    for _ in range(count):
        async with httpx.AsyncClient(timeout=30) as browser:
            verifier, challenge = pkce_pair()
            r = await browser.get(f"{server}/{issuer['id']}/authorize?" + urlencode({
                "client_id": web["id"], "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
                "code_challenge": challenge, "code_challenge_method": "S256", "state": "s"}))
            if "/login?" in r.headers["location"]:
                login = urljoin(server, r.headers["location"])
                page = await browser.get(login)
                r = await browser.post(login.split("?")[0], data={**form_fields(page.text),
                                                                  "username": "bench@example.com",
                                                                  "password": PASSWORD})
                r = await browser.get(urljoin(server, r.headers["location"]))
            code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
            t = await browser.post(f"{server}/{issuer['id']}/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": web["id"], "client_secret": web["secret"]})
            tokens.append(t.json()["refresh_token"])
    return {"issuer": issuer["id"], "m2m": (m2m["id"], m2m["secret"]), "web": (web["id"], web["secret"]),
            "tokens": tokens}


def provider_server(fmt: str) -> Server | None:
    node_dir = HERE / "node"
    if shutil.which("node") is None or not (node_dir / "node_modules" / "oidc-provider").exists():
        return None
    port = free_port()

    class NodeServer(Server):
        pass

    srv = NodeServer.__new__(NodeServer)
    srv.port, srv.url = port, f"http://127.0.0.1:{port}"
    srv.log = tempfile.TemporaryFile()
    srv.proc = subprocess.Popen(["node", str(node_dir / "provider.mjs"), str(port), fmt], cwd=node_dir,
                                stdout=srv.log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(srv.url + "/.well-known/openid-configuration", timeout=1)
            return srv
        except httpx.HTTPError:
            time.sleep(0.1)
    srv.stop()
    return None


def line(name: str, r: Result, base: Result) -> str:
    return (f"  {name:<40} {r.rps:>8.0f} req/s ({r.rps / base.rps:4.2f}x)  p50 {r.p50_ms:6.2f} ms  "
            f"p99 {r.p99_ms:7.2f} ms  non-2xx {r.non_2xx}/{r.requests}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return

    from app.core.migrations import upgrade

    d, c = args.duration, args.connections
    base_db = server_url()
    url = asyncio.run(create_database(base_db))
    servers: list[Server] = []
    try:
        upgrade(url)
        bare = bare_server()
        servers.append(bare)
        srv = authpi_server(url)
        servers.append(srv)
        # Twice as many chains as connections: wrk may ask for a request before the previous
        # response has handed its token back, and a request without a token would break its chain.
        fx = asyncio.run(make_fixtures(url, srv.url, 2 * c))
        token_path = f"/{fx['issuer']}/token"
        cc_body = "grant_type=client_credentials&scope=invoices:read"
        cc_auth = basic(*fx["m2m"])
        bare_auth = basic("x", "y")

        # Interleaved rounds (bare, authpi, oidc-provider, ...): on a shared machine the load drifts,
        # so each ratio compares runs made side by side, and the median round is reported.
        auth_p = basic("bench", "bench-secret")
        subjects: list[tuple[str, str, str, str]] = [("bare", bare.url, "/token", bare_auth),
                                                     ("authpi", srv.url, token_path, cc_auth)]
        for fmt in ("jwt", "opaque"):
            p = provider_server(fmt)
            if p is not None:
                servers.append(p)
                subjects.append((f"oidc-provider-{fmt}", p.url, "/token", auth_p))
        for _, target, path, auth in subjects:
            wrk_post(target, path, cc_body, auth, 2, c)  # warm-up
        runs: dict[str, list[Result]] = {name: [] for name, *_ in subjects}
        for _ in range(args.rounds):
            for name, target, path, auth in subjects:
                runs[name].append(wrk_post(target, path, cc_body, auth, d, c))
        refresh = wrk_refresh(srv.url, token_path, fx["tokens"], fx["web"][0], fx["web"][1], d, c)
        refresh_base = wrk_post(bare.url, "/token", cc_body, bare_auth, d, c)

        def median_ratio(name: str) -> float:
            ratios = sorted(r.rps / b.rps for r, b in zip(runs[name], runs["bare"], strict=True))
            return ratios[len(ratios) // 2]

        def median_run(name: str) -> Result:
            return sorted(runs[name], key=lambda r: r.rps)[len(runs[name]) // 2]

        base = median_run("bare")
        print(f"\nPOST /token benchmark: {args.rounds} interleaved rounds of {d}s, wrk -t1, {c} connections, "
              f"one process per server, {os.cpu_count()} CPUs (medians)")
        print(f"  {'bare FastAPI route (baseline)':<40} {base.rps:>8.0f} req/s          "
              f"p50 {base.p50_ms:6.2f} ms  p99 {base.p99_ms:7.2f} ms")
        labels = {"authpi": "authpi client_credentials (ES256 JWT)",
                  "oidc-provider-jwt": "oidc-provider client_credentials (jwt)",
                  "oidc-provider-opaque": "oidc-provider client_credentials (opaque)"}
        for name, *_ in subjects[1:]:
            r = median_run(name)
            print(f"  {labels[name]:<40} {r.rps:>8.0f} req/s ({median_ratio(name):4.2f}x)  "
                  f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  non-2xx {r.non_2xx}/{r.requests}")
        if len(subjects) == 2:
            print("  oidc-provider: skipped (install Node 20 and run `npm ci` in bench/node)")
        print(line("authpi refresh_token (rotation)", refresh, refresh_base))
        print("\nTarget: client_credentials >= 0.40x the bare route, ahead of oidc-provider's JWT figure.")
    finally:
        for s in servers:
            s.stop()
        asyncio.run(drop_database(base_db, url))


if __name__ == "__main__":
    main()
