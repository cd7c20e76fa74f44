"""Three `authpi serve` processes on one database behind a round-robin client: the quickstart, a
key revoked on one replica refused by the next request on another, the OIDC code flow with each
step on a different replica, and webhooks delivered once although every replica runs the relay."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from authpi_admin import AuthPIAdmin

from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.database import create_test_database, drop_test_database, migrate
from tests.fixtures.server import free_port
from tests.oidc.helpers import REDIRECT, get_code, make_setup
from tests.webhooks.receiver import Receiver

REPLICAS = 3


@dataclass
class Cluster:
    ports: list[int]
    database_url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        # What a load balancer in front of them would be: one origin for all.
        return f"http://127.0.0.1:{self.ports[0]}"


class RoundRobin(httpx.AsyncBaseTransport):
    """A load balancer in the client: request i goes to replica i mod N."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.count = 0
        self.used: list[int] = []
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = self.ports[self.count % len(self.ports)]
        self.count += 1
        self.used.append(port)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base, url = asyncio.run(create_test_database())
    migrate(url)
    ports = [free_port() for _ in range(REPLICAS)]
    c = Cluster(ports, url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHPI_", "OTEL_"))}
    env.update({"AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY, "AUTHPI_ENV": "test",
                "AUTHPI_PUBLIC_URL": c.public_url, "AUTHPI_WEBHOOKS_ALLOW_PRIVATE": "true",
                "AUTHPI_WEBHOOKS_POLL_INTERVAL_SECONDS": "0.5", "AUTHPI_ACCESS_LOG": "false"})
    try:
        for port in ports:
            c.procs.append(subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port, proc in zip(ports, c.procs, strict=True):
            for _ in range(600):
                assert proc.poll() is None, "a replica exited"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        yield c
    finally:
        for proc in c.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in c.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        asyncio.run(drop_test_database(base, url))


@pytest.fixture
async def balanced(cluster: Cluster) -> AsyncIterator[tuple[httpx.AsyncClient, RoundRobin]]:
    transport = RoundRobin(cluster.ports)
    async with httpx.AsyncClient(transport=transport, base_url=cluster.public_url, timeout=30) as http:
        yield http, transport


def new_account(cluster: Cluster) -> tuple[str, str, str]:
    """Console onboarding, as the README says: `authpi account create`."""
    env = {**os.environ, "AUTHPI_DATABASE_URL": cluster.database_url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY}
    result = subprocess.run([sys.executable, "-m", "app.cli", "account", "create", "--name", "acme"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    return exports["AUTHPI_ACCOUNT_ID"], exports["AUTHPI_KEY_ID"], exports["AUTHPI_KEY_SECRET"]


@pytest.fixture
async def admin(cluster: Cluster, balanced: tuple[httpx.AsyncClient, RoundRobin]
                ) -> AuthPIAdmin:
    _account_id, key_id, secret = new_account(cluster)
    http, _ = balanced
    return AuthPIAdmin(api_key=(key_id, secret), base_url=cluster.public_url, http_client=http)


async def test_the_quickstart_across_replicas(cluster: Cluster, admin: AuthPIAdmin,
                                              balanced: tuple[httpx.AsyncClient, RoundRobin]):
    http, transport = balanced
    issuer = await admin.issuers.create({"name": "acme-prod"})
    discovery = (await http.get(f"/{issuer.id}/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == f"{cluster.public_url}/{issuer.id}"
    assert (await http.get(discovery["jwks_uri"])).json()["keys"]
    client = await admin.issuer(issuer.id).clients.create({
        "name": "acme-web", "type": "external", "confidential": True,
        "settings": {"protocol": "oidc", "scopes": ["openid", "profile"], "openid": {
            "application_type": "web", "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["http://localhost:3000/api/auth/callback"]}}})
    assert client.secret
    org = await admin.issuer(issuer.id).organizations.create({"name": "Globex Corp"})
    user = await admin.issuer(issuer.id).users.create({
        "username_type": "email", "username": "ada@globex.example",
        "profile": {"first_name": "Ada", "last_name": "Lovelace"}})
    await admin.issuer(issuer.id).organization(org.id).members.create(
        {"member_id": user.id, "scopes": ["invoices:read", "invoices:write"]})
    key = await admin.issuer(issuer.id).organization(org.id).api_keys.create(
        {"type": "api_key", "name": "globex-backend", "restrictions": {"scopes": ["invoices:read"]}})
    caller = AuthPIAdmin(api_key=(key.id, key.secret_plain), base_url=cluster.public_url, http_client=http)
    who = await caller.whoami()
    assert who["organizations"] == [{"org_id": org.id, "scopes": ["invoices:read"]}]
    types: list[str] = []
    for _ in range(50):
        types = [e.type for e in (await admin.events.list(limit=20)).data]
        if types[:1] == ["api-key.verified"]:
            break
        await asyncio.sleep(0.1)
    assert types == ["api-key.verified", "api-key.created", "organization.membership.created", "user.created",
                     "organization.created", "client.created", "issuer.created", "api-key.verified",
                     "api-key.created", "account.created"]
    assert set(transport.used) == set(cluster.ports)


async def test_a_revoked_key_is_refused_by_the_next_request_on_every_replica(
        cluster: Cluster, admin: AuthPIAdmin):
    key = await admin.api_keys.create({"name": "soon-revoked", "restrictions": {"scopes": ["issuers:read"]}})
    assert key.secret_plain
    for port in cluster.ports:  # every replica has it verified and cached (warm)
        for _ in range(2):
            r = httpx.get(f"http://127.0.0.1:{port}/v1/me", auth=(key.id, key.secret_plain), timeout=10)
            assert r.status_code == 200
    assert (await admin.api_keys.revoke(key.id)).status == "revoked"
    for port in cluster.ports:
        r = httpx.get(f"http://127.0.0.1:{port}/v1/me", auth=(key.id, key.secret_plain), timeout=10)
        assert r.status_code == 401, port


async def test_the_code_flow_with_each_step_on_another_replica(
        cluster: Cluster, admin: AuthPIAdmin, balanced: tuple[httpx.AsyncClient, RoundRobin]):
    setup = await make_setup(admin)
    transport = RoundRobin(cluster.ports)
    async with httpx.AsyncClient(transport=transport, timeout=30) as browser:
        transport.used.clear()
        code, verifier = await get_code(browser, setup, cluster.public_url)
        token = await browser.post(f"{cluster.public_url}/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert token.status_code == 200, token.text
        tokens = token.json()
        userinfo = await browser.get(f"{cluster.public_url}/{setup.issuer_id}/userinfo",
                                     headers={"authorization": f"Bearer {tokens['access_token']}"})
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["sub"] == setup.user_id
        # The code is single-use on every replica.
        again = await browser.post(f"{cluster.public_url}/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert again.status_code == 400
    # authorize, login page, login post, back to authorize, token, userinfo, token: never twice in a
    # row on one replica, and all three took part.
    assert len(transport.used) >= 6
    assert all(a != b for a, b in zip(transport.used, transport.used[1:], strict=False))
    assert set(transport.used) == set(cluster.ports)


async def test_webhooks_are_delivered_once(cluster: Cluster, admin: AuthPIAdmin):
    receiver = Receiver().start()
    try:
        path = "/replicas"
        hook = await admin.webhooks.create({"name": "hook", "url": receiver.endpoint(path),
                                            "auth": {"type": "signature"}, "events": ["user.created"]})
        receiver.secrets[path] = [hook.auth.model_extra["secret"]]
        issuer = await admin.issuers.create({"name": "hooked"})
        users = [await admin.issuer(issuer.id).users.create(
            {"username_type": "email", "username": f"u{i}@example.com", "profile": {}}) for i in range(12)]
        got = await receiver.wait_for(path, len(users), timeout=30)
        assert len(got) == len(users)
        await asyncio.sleep(2.5)  # a duplicate from a second relay would have arrived by now
        got = receiver.at(path)
        assert len(got) == len(users)
        assert sorted(r.event["subject"]["id"] for r in got) == sorted(u.id for u in users)
        assert len({r.webhook_id for r in got}) == len(users)
        assert all(r.verified_with for r in got)
    finally:
        receiver.stop()
