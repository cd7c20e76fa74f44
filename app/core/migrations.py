"""Apply and inspect the Alembic schema (the only source of the schema)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


def _project_root() -> Path:
    """Where alembic.ini and migrations/ are: the checkout (editable install) or the working dir
    (a packaged install such as the Docker image, whose WORKDIR holds them)."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "alembic.ini").exists():
            return candidate
    raise RuntimeError("alembic.ini not found: run authpi from the project directory")


ROOT = _project_root()


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str) -> None:
    """Migrate to every head (packages may add branches off the base revision).

    Serialised with an advisory lock so replicas starting together do not race.
    """
    command.upgrade(alembic_config(database_url), "heads")


def script_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_heads())


def script_revisions() -> set[str]:
    """Every revision this code knows (a database at one it does not know was migrated by a newer
    release)."""
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/x"))
    return {rev.revision for rev in script.walk_revisions()}


async def database_heads(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        try:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        except Exception:  # noqa: BLE001 - no table yet means not migrated
            return set()
        return {r[0] for r in rows}
