"""SQLAlchemy engine for the local SQLite file: connection pragmas, transaction control, error translation.

Every connection gets, from a ``connect`` listener (pragmas are per connection, not per file):

* ``journal_mode=WAL``: readers never block the writer and vice versa (the UI reads while sync writes).
* ``foreign_keys=ON``: SQLite ships with foreign keys *off* for backwards compatibility.
* ``busy_timeout``: a second process (``integmed sync`` while the app is open) waits for the lock instead of
  failing at once; within one process the writer thread already serialises writes.
* ``synchronous=NORMAL``: in WAL mode this is durable against application crashes and loses at most the
  last transactions on power loss, never consistency (https://sqlite.org/pragma.html#pragma_synchronous).
* ``wal_autocheckpoint``: `WAL_AUTOCHECKPOINT_PAGES`, a bound only; checkpoints run on their own thread
  after commits (`desktop.store.checkpoint`), not inside the writer's commits.

Transactions: Python's ``sqlite3`` module (before 3.12's ``autocommit``) issues BEGIN lazily and only before
DML, which breaks repeatable reads and transactional DDL. We switch that off (``isolation_level = None``)
and emit BEGIN ourselves, the recipe in SQLAlchemy's SQLite dialect docs. Write units of work ask for
``BEGIN IMMEDIATE`` through the ``integmed_begin`` execution option: taking the write lock up front means a
second process waits in ``busy_timeout`` instead of failing with SQLITE_BUSY when a deferred read
transaction tries to upgrade to a write (https://sqlite.org/lang_transaction.html).

Errors: `translate_sqlite_error` sorts ``sqlite3`` errors by primary result code into the `KnownError`
family (qutebrowser's ``raise_sqlite_error``); a ``handle_error`` listener applies it to every statement,
so callers see `DiskFull` rather than ``OperationalError``. Any other SQLite error stays a bug.

Encryption hook: when the database key from the OS keyring arrives (DESIGN §7), its ``PRAGMA key`` goes
first in `_on_connect`, before any other statement touches the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, ExceptionContext

from desktop.errors import (
    DatabaseCorrupt,
    DatabaseLocked,
    DatabaseReadOnly,
    DatabaseUnavailable,
    DiskError,
    DiskFull,
    StorageError,
)

DEFAULT_BUSY_TIMEOUT_MS = 5000
BEGIN_OPTION = "integmed_begin"
"""Execution option naming the BEGIN mode of a connection's transactions: ``DEFERRED`` or ``IMMEDIATE``."""

_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE"})

_BY_PRIMARY_CODE: dict[int, type[StorageError]] = {
    sqlite3.SQLITE_FULL: DiskFull,
    sqlite3.SQLITE_BUSY: DatabaseLocked,
    sqlite3.SQLITE_LOCKED: DatabaseLocked,
    sqlite3.SQLITE_READONLY: DatabaseReadOnly,
    sqlite3.SQLITE_PERM: DatabaseReadOnly,
    sqlite3.SQLITE_IOERR: DiskError,
    sqlite3.SQLITE_CORRUPT: DatabaseCorrupt,
    sqlite3.SQLITE_NOTADB: DatabaseCorrupt,
    sqlite3.SQLITE_CANTOPEN: DatabaseUnavailable,
}


def translate_sqlite_error(exc: BaseException, *, path: Path | None = None) -> StorageError | None:
    """The `KnownError` for an SQLite error, or ``None`` when it is a bug (constraint, syntax, misuse).

    Args:
        exc: a ``sqlite3.Error``, or an SQLAlchemy ``DBAPIError`` wrapping one.
        path: the database file, shown to the user.

    Returns:
        The translated error (not raised), or ``None``.
    """
    original = getattr(exc, "orig", exc)
    if not isinstance(original, sqlite3.Error):
        return None
    code = getattr(original, "sqlite_errorcode", None)
    if code is None:
        return None
    # Extended result codes (e.g. SQLITE_IOERR_WRITE = 778) carry the primary code in the low byte.
    known = _BY_PRIMARY_CODE.get(code & 0xFF)
    if known is None:
        return None
    name = getattr(original, "sqlite_errorname", str(code))
    return known(detail=f"{name}: {original}", path=path)


@contextmanager
def translating_sqlite_errors(path: Path | None = None) -> Iterator[None]:
    """Re-raise SQLite errors from raw ``sqlite3`` use (backups, read-only probes) as `KnownError`s."""
    try:
        yield
    except (sqlite3.Error, sa.exc.DBAPIError) as exc:
        known = translate_sqlite_error(exc, path=path)
        if known is None:
            raise
        raise known from exc


WAL_AUTOCHECKPOINT_PAGES = 4_000
"""Pages (4 KiB) after which a commit checkpoints the WAL itself: 16 MiB, four times SQLite's default, reached
only while commits never pause (a first sync) or if the checkpoint thread (`desktop.store.checkpoint`) falls
behind."""


def create_engine(path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """An engine for the SQLite file at ``path`` with the pragmas, BEGIN control and error translation above.

    Args:
        path: the database file (created on first connect when missing; its folder must exist).
        busy_timeout_ms: how long a connection waits for another process's lock.

    Returns:
        The engine. The caller (a composition root) disposes of it.
    """
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's begin event below (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        if mode not in _BEGIN_MODES:
            raise ValueError(f"unknown BEGIN mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        known = translate_sqlite_error(context.original_exception, path=path)
        if known is not None:
            raise known from context.sqlalchemy_exception or context.original_exception

    return engine
