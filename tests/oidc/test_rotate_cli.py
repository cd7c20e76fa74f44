"""`authpi issuer rotate-keys` as an operator runs it (a subprocess against the test database)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from authpi_admin import AuthPIAdmin

from tests.conftest import TEST_SECRET_KEY


class TestRotateKeysCli:
    async def test_rotates_and_keeps_old_keys_published(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                        database_url: str) -> None:
        issuer = await admin.issuers.create({"name": "cli"})
        before = {k["kid"] for k in (await client.get(f"/{issuer.id}/jwks.json")).json()["keys"]}
        env = {**os.environ, "AUTHPI_DATABASE_URL": database_url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY}
        result = subprocess.run([sys.executable, "-m", "app.cli", "issuer", "rotate-keys", issuer.id],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        printed = dict(line.split() for line in result.stdout.strip().splitlines())
        assert set(printed) == {"RS256", "ES256"}
        # The server was told (NOTIFY) and reloads its key set: old and new keys are published.
        import asyncio

        after: set[str] = set()
        for _ in range(50):
            after = {k["kid"] for k in (await client.get(f"/{issuer.id}/jwks.json")).json()["keys"]}
            if set(printed.values()) <= after:
                break
            await asyncio.sleep(0.1)
        assert after == before | set(printed.values())
        assert (await admin.events.list(event_types="issuer.signing-key.rotated")).data

    def test_unknown_issuer_fails(self, database_url: str) -> None:
        env = {**os.environ, "AUTHPI_DATABASE_URL": database_url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY}
        result = subprocess.run([sys.executable, "-m", "app.cli", "issuer", "rotate-keys",
                                 "i_01jz0000000000000000000000"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 1
