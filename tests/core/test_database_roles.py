"""Least-privilege database roles (issue 9, item 4): the owner migrates, the server's role can add
to the trail and read it, and nothing else; so it cannot rewrite the trail whatever it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from app.core.cli import prepare_database as _prepare
from app.core.db import to_asyncpg_dsn
from app.main import create_app
from tests.conftest import make_settings, new_account
from tests.fixtures.database import RoleDatabase, create_role_database, drop_role_database


@pytest.fixture(scope="module")
def roles() -> Iterator[RoleDatabase]:
    db = asyncio.run(create_role_database())
    try:
        # The very path `authpi serve` takes: migrate as the owner, grant, check.
        settings = make_settings(database_url=db.server_url, migration_database_url=db.migration_url)
        assert _prepare(settings) == db.server_url
        yield db
    finally:
        asyncio.run(drop_role_database(db))


@pytest.fixture
async def server_conn(roles: RoleDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(to_asyncpg_dsn(roles.server_url))
    yield conn
    await conn.close()


@pytest.fixture
async def owner_conn(roles: RoleDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(to_asyncpg_dsn(roles.migration_url))
    yield conn
    await conn.close()


class TestTheServerRunsAsTheServerRole:
    async def test_the_api_works_and_writes_its_trail(self, roles: RoleDatabase,
                                                      owner_conn: asyncpg.Connection) -> None:
        app = create_app(make_settings(), database_url=roles.server_url)
        async with app.router.lifespan_context(app):
            creds = await new_account(app, "roles")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                a = creds.account_id
                r = await http.post(f"/v1/accounts/{a}/issuers", auth=creds.basic, json={"name": "r"})
                assert r.status_code == 201, r.text
                issuer = r.json()["data"]["id"]
                r = await http.post(f"/v1/accounts/{a}/issuers/{issuer}/users", auth=creds.basic,
                                    json={"username_type": "username", "username": "ada"})
                assert r.status_code == 201, r.text
                user = r.json()["data"]["id"]
                r = await http.patch(f"/v1/accounts/{a}/issuers/{issuer}/users/{user}", auth=creds.basic,
                                     json={"metadata": {"k": 1}})
                assert r.status_code == 200, r.text
                r = await http.delete(f"/v1/accounts/{a}/issuers/{issuer}/users/{user}", auth=creds.basic)
                assert r.status_code in (200, 204), r.text
                assert (await http.get("/v1/me", auth=creds.basic)).status_code == 200
                assert (await http.get("/readyz")).status_code == 200
                assert (await http.get(f"/{issuer}/jwks.json")).status_code == 200
        types = {r["type"] for r in await owner_conn.fetch(
            "SELECT type FROM events WHERE account_id = $1", creds.account_id)}
        assert {"account.created", "issuer.created", "user.created", "user.updated"} <= types

    async def test_it_is_neither_superuser_nor_owner(self, server_conn: asyncpg.Connection,
                                                     roles: RoleDatabase) -> None:
        row = await server_conn.fetchrow(
            "SELECT current_user AS me, rolsuper, pg_get_userbyid(c.relowner) AS owner "
            "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'events'::regclass")
        assert row["me"] == roles.server
        assert row["rolsuper"] is False
        assert row["owner"] == roles.owner


class TestTheTrailCannotBeRewritten:
    @pytest.mark.parametrize("statement", [
        "UPDATE events SET type = 'forged'",
        "DELETE FROM events",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
        "DROP TABLE events",
        "DROP TRIGGER events_append_only ON events",
        "CREATE TABLE evil (id int)",
        "ALTER TABLE users ADD COLUMN evil int",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE OR REPLACE FUNCTION authpi_events_append_only() RETURNS trigger AS $$ BEGIN "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
    ])
    async def test_refused(self, server_conn: asyncpg.Connection, owner_conn: asyncpg.Connection,
                           statement: str) -> None:
        before = await owner_conn.fetchval("SELECT count(*) FROM events")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await server_conn.execute(statement)
        assert await owner_conn.fetchval("SELECT count(*) FROM events") == before
        assert await owner_conn.fetchval("SELECT count(*) FROM events WHERE type = 'forged'") == 0


class TestFutureMigrations:
    async def test_a_table_the_owner_creates_later_is_usable_by_the_server(
            self, owner_conn: asyncpg.Connection, server_conn: asyncpg.Connection) -> None:
        await owner_conn.execute("CREATE TABLE IF NOT EXISTS later_feature (id text PRIMARY KEY)")
        await server_conn.execute("INSERT INTO later_feature VALUES ('x') ON CONFLICT DO NOTHING")
        assert await server_conn.fetchval("SELECT count(*) FROM later_feature") == 1
        await server_conn.execute("DELETE FROM later_feature")
        await owner_conn.execute("DROP TABLE later_feature")


class TestAnExistingSuperuserOwnedDatabase:
    async def test_is_handed_over_to_the_owner(self) -> None:
        """An embedded data dir from before the roles: a superuser created and migrated it."""
        from app.core.db import database_name, with_database
        from app.core.migrations import upgrade
        from app.core.roles import ensure_roles, with_user
        from tests.fixtures.database import create_test_database

        base, url = await create_test_database()
        await asyncio.to_thread(upgrade, url)
        name = database_name(url)
        db = RoleDatabase(base, name, f"{name}_owner", f"{name}_server",
                          with_user(with_database(base, name), f"{name}_owner"),
                          with_user(with_database(base, name), f"{name}_server"))
        try:
            await ensure_roles(base, name, db.owner, db.server)
            settings = make_settings(database_url=db.server_url, migration_database_url=db.migration_url)
            await asyncio.to_thread(_prepare, settings)
            conn = await asyncpg.connect(to_asyncpg_dsn(db.server_url))
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("ALTER TABLE events DISABLE TRIGGER ALL")
                assert await conn.fetchval("SELECT count(*) FROM users") == 0
            finally:
                await conn.close()
        finally:
            await drop_role_database(db)


class TestWithoutAMigrationUrl:
    def test_the_server_migrates_itself_and_says_the_trigger_alone_protects(
            self, roles: RoleDatabase, caplog: pytest.LogCaptureFixture) -> None:
        # The owner's URL as the server's own, no migration URL: what an operator gets by default.
        # The CLI's messages are log lines on stderr (app/core/cli.say).
        with caplog.at_level("INFO", logger="authpi.cli"):
            _prepare(make_settings(database_url=roles.migration_url))
        err = caplog.text
        assert "protected by its trigger alone" in err
