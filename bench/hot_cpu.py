"""Server CPU time per request on the hot paths, as a ratio to a bare FastAPI route in the same run.

    python bench/hot_cpu.py [--src TREE] [--duration 6] [--rounds 3]

Throughput on a shared, loaded machine mostly measures the neighbours; the CPU time the server
process spends per request (utime + stime from /proc, every thread) barely depends on them. Each
round runs wrk against the bare route, a warm `GET /v1/me` (account key), `POST /{issuer}/token`
(client_credentials), a refresh-token rotation and an authorization-code redemption (the fixtures and
wrk scripts of bench/oidc_token.py: chains and codes copied from rows the hosted login wrote), and
prints microseconds of server CPU per request and `bare / path`, the
throughput one core would give relative to the bare route (higher is better). `--src` serves another
source tree (e.g. an export of an older commit) with this tree's venv, for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _load_oidc_token():  # noqa: ANN202 - the token bench's fixtures and wrk scripts, by file path
    spec = importlib.util.spec_from_file_location("bench_oidc_token", ROOT / "bench" / "oidc_token.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_oidc_token"] = module
    spec.loader.exec_module(module)
    return module


_tok = _load_oidc_token()
# The chains and codes are copied with their HMAC under this key (bench/verify.py's).
SERVER_KEY = _tok._verify.SERVER_KEY
def bare_app():  # noqa: ANN201 - built only in the --bare-server subprocess
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> JSONResponse:
        return JSONResponse({"data": {"ok": True}})

    return app


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], env={**os.environ, **env},
                                     cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read()[-3000:].decode(errors="replace"))
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code in (200, 404):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def wrk(url: str, duration: int, script: str) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{duration}s", "-s", f.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} failed requests against {url}")
    return total


def per_request(server: Server, url: str, duration: int, script: str) -> float:
    before = cpu_seconds(server.proc.pid)
    n = wrk(url, duration, script)
    return (cpu_seconds(server.proc.pid) - before) / n * 1e6


def per_grant(server: Server, run) -> float:  # noqa: ANN001 - a bench_oidc_token wrk runner
    before = cpu_seconds(server.proc.pid)
    result = run()
    if result.non_2xx:
        raise RuntimeError(f"{result.non_2xx} failed token requests")
    return (cpu_seconds(server.proc.pid) - before) / max(1, result.requests) * 1e6


def lua(method: str, headers: dict[str, str], body: str = "") -> str:
    h = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
    return f'wrk.method = "{method}"\nwrk.body = "{body}"\nwrk.headers = {{ {h} }}\n'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, default=ROOT)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare-server", action="store_true")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.bare_server:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return

    src = args.src.resolve()
    sys.path.insert(0, str(ROOT))
    from app.core.db import start_embedded_postgres, to_asyncpg_dsn, with_database

    base = start_embedded_postgres(ROOT / ".authpi" / "bench")
    name = f"hot_cpu_{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-c", "import asyncio, asyncpg, sys\n"
                    "async def m():\n c = await asyncpg.connect(sys.argv[1])\n"
                    " await c.execute(f'CREATE DATABASE \"{sys.argv[2]}\"')\n await c.close()\n"
                    "asyncio.run(m())", to_asyncpg_dsn(with_database(base, "postgres")), name], check=True)
    url = with_database(base, name)
    env = {"AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": SERVER_KEY, "AUTHPI_LOG_LEVEL": "warning",
           "AUTHPI_WEBHOOKS_RELAY_ENABLED": "false", "PYTHONPATH": str(src)}
    created = subprocess.run([sys.executable, "-m", "app.cli", "account", "create", "--name", "bench"],
                             env={**os.environ, **env}, cwd=src, capture_output=True, text=True, check=True)
    exports = dict(re.findall(r"export (\w+)=(\S+)", created.stdout))
    account, key = exports["AUTHPI_ACCOUNT_ID"], (exports["AUTHPI_KEY_ID"], exports["AUTHPI_KEY_SECRET"])
    app = Server([sys.executable, "-m", "app.cli", "serve"], env, src)
    bare = Server([sys.executable, str(Path(__file__).resolve()), "--bare-server"], {}, ROOT)
    try:
        admin = httpx.Client(base_url=app.url, auth=key, timeout=60)
        issuer = admin.post(f"/v1/accounts/{account}/issuers", json={"name": "bench"}).json()["data"]["id"]
        client = admin.post(f"/v1/accounts/{account}/issuers/{issuer}/clients", json={
            "name": "svc", "settings": {"scopes": ["a:read"], "openid": {
                "application_type": "service", "grant_types": ["client_credentials"]}}}).json()["data"]
        basic = base64.b64encode(f"{key[0]}:{key[1]}".encode()).decode()
        me = lua("GET", {"Authorization": f"Basic {basic}"})
        cc = lua("POST", {"Content-Type": "application/x-www-form-urlencoded"},
                 f"grant_type=client_credentials&client_id={client['id']}&client_secret={client['secret']}")
        assert httpx.get(app.url + "/v1/me", auth=key, timeout=60).status_code == 200
        assert httpx.post(f"{app.url}/{issuer}/token", content=cc.split('"')[3], headers={
            "Content-Type": "application/x-www-form-urlencoded"}, timeout=60).status_code == 200
        fx = asyncio.run(_tok.make_fixtures(url, app.url))
        web_id, web_secret = fx["web"]
        token_path = f"/{fx['issuer']}/token"
        # A first rotation and redemption: the token pool's connections and prepared statements.
        chains = asyncio.run(_tok.clone_chains(url, fx["refresh_template"], 32))
        _tok.wrk_refresh(app.url, token_path, chains, web_id, web_secret, 1, 16)
        rows: dict[str, list[float]] = {"bare": [], "me": [], "cc": [], "refresh": [], "code": []}
        for _ in range(args.rounds):
            rows["bare"].append(per_request(bare, bare.url + "/bare", args.duration, lua("GET", {})))
            rows["me"].append(per_request(app, app.url + "/v1/me", args.duration, me))
            rows["cc"].append(per_request(app, f"{app.url}/{issuer}/token", args.duration, cc))
            chains = asyncio.run(_tok.clone_chains(url, fx["refresh_template"], 32))
            rows["refresh"].append(per_grant(app, lambda chains=chains: _tok.wrk_refresh(
                app.url, token_path, chains, web_id, web_secret, args.duration, 16)))
            codes = asyncio.run(_tok.clone_codes(url, fx["code_template"], 800 * args.duration))
            rows["code"].append(per_grant(app, lambda codes=codes: _tok.wrk_code(
                app.url, token_path, codes, fx["verifier"], web_id, web_secret, args.duration, 16)))
        b = statistics.median(rows["bare"])
        print(f"server CPU per request, median of {args.rounds} rounds of {args.duration}s "
              f"(src {src}, load average {os.getloadavg()[0]:.1f})")
        print(f"  bare FastAPI route           {b:7.1f} us")
        for label, k in (("warm GET /v1/me", "me"), ("client_credentials /token", "cc"),
                         ("refresh_token /token", "refresh"), ("authorization_code /token", "code")):
            m = statistics.median(rows[k])
            spread = ", ".join(f"{x:.0f}" for x in rows[k])
            print(f"  {label:<28} {m:7.1f} us   bare/path {b / m:.2f}x   [{spread}]")
    finally:
        app.stop()
        bare.stop()


if __name__ == "__main__":
    main()
