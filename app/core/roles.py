"""Least-privilege database roles: the owner migrates, the server only reads and writes rows.

The server's role may SELECT, INSERT, UPDATE and DELETE the tables' rows, except the events trail
(SELECT and INSERT only) and alembic_version (SELECT only). It owns nothing, so it cannot ALTER,
DROP, TRUNCATE or disable a trigger, and not being a superuser it cannot set
`session_replication_role` to skip the append-only trigger. Default privileges make tables that
future migrations create readable and writable by it; `grant_server_role` runs after every
migration and puts the events restrictions back on whatever the migration created.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote, unquote, urlsplit

import asyncpg

from app.core.db import database_name, to_asyncpg_dsn, with_database

log = logging.getLogger("authpi.db")

# Tables whose rows the server may only add to (and read).
APPEND_ONLY = ("events",)
READ_ONLY = ("alembic_version",)


def role_of(url: str) -> str:
    parts = urlsplit(url)
    return unquote(parts.username or "") or "postgres"


def with_user(url: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return parts._replace(netloc=f"{auth}@{host}").geturl()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def grant_server_role(migration_url: str, server_role: str) -> None:
    """As the owner (the migration URL's role): give the server role exactly what it needs."""
    conn = await asyncpg.connect(to_asyncpg_dsn(migration_url))
    try:
        owner = await conn.fetchval("SELECT current_user")
        if owner == server_role:
            return
        s, o = _ident(server_role), _ident(owner)
        db = _ident(await conn.fetchval("SELECT current_database()"))
        async with conn.transaction():
            for stmt in (
                f"GRANT CONNECT ON DATABASE {db} TO {s}",
                f"GRANT USAGE ON SCHEMA public TO {s}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {s}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {s}",
                # What later migrations create (as this owner) is granted the same way.
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {s}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
                f"GRANT USAGE, SELECT ON SEQUENCES TO {s}",
            ):
                await conn.execute(stmt)
            # The trail and its partitions, if any: rows are only ever added.
            tables = await conn.fetch(
                """SELECT c.oid::regclass::text AS name, p.relname AS root FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_class p ON p.oid = coalesce(
                       (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid LIMIT 1), c.oid)
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                     AND (c.relname = ANY($1::text[]) OR p.relname = ANY($1::text[])
                          OR c.relname = ANY($2::text[]))""",
                list(APPEND_ONLY), list(READ_ONLY))
            for row in tables:
                keep = "SELECT" if row["root"] in READ_ONLY or row["name"] in READ_ONLY else "SELECT, INSERT"
                await conn.execute(f"REVOKE ALL ON {row['name']} FROM {s}")
                await conn.execute(f"GRANT {keep} ON {row['name']} TO {s}")
    finally:
        await conn.close()


async def trail_protection(url: str) -> str | None:
    """None when the URL's role cannot rewrite the trail; else why not (for a loud warning)."""
    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            """SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') AS owns,
                      has_table_privilege('events', 'UPDATE') OR has_table_privilege('events', 'DELETE')
                      OR has_table_privilege('events', 'TRUNCATE') AS writes
               FROM pg_roles r, pg_class c
               WHERE r.rolname = current_user AND c.oid = 'events'::regclass""")
    finally:
        await conn.close()
    if row is None:
        return None
    if row["rolsuper"]:
        return "the server's database role is a superuser"
    if row["owns"]:
        return "the server's database role owns the events table"
    if row["writes"]:
        return "the server's database role may UPDATE, DELETE or TRUNCATE events"
    return None


async def ensure_roles(admin_url: str, database: str, owner: str, server: str,
                       passwords: dict[str, str] | None = None) -> None:
    """As a superuser: the owner and server login roles, and the database owned by the owner.

    Used by the embedded database (roles authpi_owner / authpi_server) and by the tests (roles
    named per run: roles are cluster-wide). Objects a superuser created before are handed over
    to the owner, so an existing embedded data dir keeps working.
    """
    passwords = passwords or {}
    conn = await asyncpg.connect(to_asyncpg_dsn(with_database(admin_url, "postgres")))
    try:
        for role in (owner, server):
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                password = passwords.get(role)
                clause = " PASSWORD " + _literal(password) if password else ""
                try:
                    await conn.execute(f"CREATE ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB "
                                       f"NOCREATEROLE NOREPLICATION NOBYPASSRLS{clause}")
                except asyncpg.DuplicateObjectError:
                    pass  # a concurrent starter made it
        await conn.execute(f"ALTER DATABASE {_ident(database)} OWNER TO {_ident(owner)}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(to_asyncpg_dsn(with_database(admin_url, database)))
    try:
        await conn.execute(_HAND_OVER.replace("OWNER_ROLE", _ident(owner))
                           .replace("OWNER_NAME", owner.replace("'", "''")))
    finally:
        await conn.close()


EMBEDDED_OWNER = "authpi_owner"
EMBEDDED_SERVER = "authpi_server"


def embedded_role_urls(admin_url: str) -> tuple[str, str]:
    """(server_url, migration_url) on the embedded database, creating both roles if needed."""
    asyncio.run(ensure_roles(admin_url, database_name(admin_url), EMBEDDED_OWNER, EMBEDDED_SERVER))
    return with_user(admin_url, EMBEDDED_SERVER), with_user(admin_url, EMBEDDED_OWNER)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Everything in schema public not yet owned by the owner role (tables, their sequences and
# indexes follow; standalone sequences, functions and types too).
_HAND_OVER = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass::text AS name FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND NOT pg_has_role('OWNER_NAME', c.relowner, 'USAGE')
  LOOP EXECUTE format('ALTER TABLE %s OWNER TO OWNER_ROLE', r.name); END LOOP;
  FOR r IN SELECT c.oid::regclass::text AS name FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'S'
             AND NOT pg_has_role('OWNER_NAME', c.relowner, 'USAGE')
  LOOP EXECUTE format('ALTER SEQUENCE %s OWNER TO OWNER_ROLE', r.name); END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS name FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND NOT pg_has_role('OWNER_NAME', p.proowner, 'USAGE')
  LOOP EXECUTE format('ALTER FUNCTION %s OWNER TO OWNER_ROLE', r.name); END LOOP;
  FOR r IN SELECT t.oid::regtype::text AS name FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
             AND NOT pg_has_role('OWNER_NAME', t.typowner, 'USAGE')
  LOOP EXECUTE format('ALTER TYPE %s OWNER TO OWNER_ROLE', r.name); END LOOP;
END $$;
"""
