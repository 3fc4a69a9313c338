"""Readiness: can we reach the database, and is its schema the one this code expects?"""

from __future__ import annotations

import asyncio

import asyncpg

from sync_server.db.migrate import current_revision


async def readiness(pool: asyncpg.Pool, head: str) -> tuple[str | None, str | None]:
    """Returns (reason it is not ready or None, current schema revision)."""
    try:
        async with asyncio.timeout(3):
            async with pool.acquire() as conn:
                revision = await current_revision(conn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"database not reachable: {type(exc).__name__}: {exc}", None
    if revision is None:
        return "database schema not migrated: run `integmed-server migrate`", None
    if revision != head:
        return (
            f"database schema at {revision}, this server needs {head}: run `integmed-server migrate`",
            revision,
        )
    return None, revision
