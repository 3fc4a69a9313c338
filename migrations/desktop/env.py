"""Alembic environment for the desktop's SQLite file (synchronous; batch mode so SQLite can ALTER tables).

`desktop.store.migrate` passes an open connection in ``config.attributes["connection"]`` with its
transaction already begun and foreign keys off, and commits itself, so the whole upgrade is one transaction:
a crash or an error leaves the file at the old revision. Without a connection (a developer running
``alembic`` by hand, e.g. ``revision --autogenerate`` through `desktop.store.migrate.alembic_config`), the
same path runs on a connection opened here from ``sqlalchemy.url``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context
from sqlalchemy import Connection, make_url

from desktop.store import tables

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # The FTS5 table and its shadow tables (patient_search_data, _idx, _docsize, _config) are made by raw
    # SQL in the revisions; autogenerate must neither drop nor recreate them.
    if type_ == "table" and name is not None and name.startswith(tables.SEARCH_TABLE):
        return name == tables.patient_search_docs.name
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.metadata,
        render_as_batch=True,
        include_name=_include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from desktop.store import migrate  # imported late: migrate imports alembic's command module

    database = make_url(config.get_main_option("sqlalchemy.url") or "").database
    if not database:
        raise SystemExit("set sqlalchemy.url to sqlite:///PATH of the desktop database")
    migrate.run_in_one_transaction(Path(database), _run)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    _main()
