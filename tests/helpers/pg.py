"""PostgreSQL for tests: one cluster per test process, a migrated template, a fresh database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

EXTERNAL_ENV = "INTEGMED_TEST_DATABASE_URL"  # an admin DSN of an external server that may CREATE DATABASE


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    tpl = f' TEMPLATE "{template}"' if template else ""
    run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"{tpl}'))
    return with_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def unique_name(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{uuid.uuid4().hex[:10]}"


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return run(fetch(dsn, sql, *args))


def scalar(dsn: str, sql: str, *args: Any) -> Any:
    rows = query(dsn, sql, *args)
    return rows[0][0] if rows else None
