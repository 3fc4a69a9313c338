"""Alembic, driven from code: upgrade, downgrade, current and head revisions of the server schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import migrations

SCRIPT_LOCATION = Path(migrations.__file__).parent / "server"


def _sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    assert head is not None
    return head


def upgrade(dsn: str, revision: str = "head") -> None:
    """Upgrade the schema; running it again at head changes nothing."""
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


async def current_revision(conn: asyncpg.Connection) -> str | None:
    """The revision stored in the database, or None when it was never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return None
    return await conn.fetchval("SELECT version_num FROM alembic_version")  # type: ignore[no-any-return]


def current_revision_sync(dsn: str) -> str | None:
    async def _go() -> str | None:
        conn = await asyncpg.connect(dsn)
        try:
            return await current_revision(conn)
        finally:
            await conn.close()

    return asyncio.run(_go())
