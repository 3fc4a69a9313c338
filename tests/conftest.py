"""Fixtures shared by the whole suite: PostgreSQL, the national-services sandbox, the API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import pg


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin DSN of a PostgreSQL server: embedded (one per test process) unless the env var names one."""
    external = os.environ.get(pg.EXTERNAL_ENV)
    if external:
        yield external
        return
    from sync_server.db import embedded

    cluster = embedded.start(Path(tmp_path_factory.mktemp("pg")))
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database migrated to head once per run; tests clone it."""
    from sync_server.db import migrate

    name = pg.unique_name("integmed_tpl")
    dsn = pg.create_database(pg_admin_dsn, name)
    migrate.upgrade(dsn)
    try:
        yield name
    finally:
        pg.drop_database(pg_admin_dsn, name)


@pytest.fixture
def db_url(pg_admin_dsn: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test (CREATE DATABASE … TEMPLATE)."""
    name = pg.unique_name("t")
    dsn = pg.create_database(pg_admin_dsn, name, template=pg_template)
    try:
        yield dsn
    finally:
        pg.drop_database(pg_admin_dsn, name)
