"""Alembic, driven from code: upgrade, downgrade, current and head revisions of the server schema.

Alembic (and SQLAlchemy under it) is imported only by the commands that run migrations: the API process only
needs the head revision (`head_revision`, read from the revision files) and the stored one (`current_revision`,
one query), and importing alembic would cost it ≈ 0.2 s of start-up and ≈ 25 MiB for nothing.
"""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

import migrations

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(migrations.__file__).parent / "server"


def _sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


def alembic_config(dsn: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


@functools.cache
def head_revision() -> str:
    """The revision no other revision builds on, read from the files (`alembic_head` agrees: a test checks).

    Raises:
        RuntimeError: the files do not form one line of revisions with one head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (SCRIPT_LOCATION / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) for m in _REVISION.finditer(path.read_text(encoding="utf-8"))}
        if found.get("revision"):
            revisions.add(found["revision"])
            if found.get("down_revision"):
                parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"server migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def alembic_head() -> str:
    """The head revision as alembic computes it (imports alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    assert head is not None
    return head


def upgrade(dsn: str, revision: str = "head") -> None:
    """Upgrade the schema; running it again at head changes nothing."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

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
