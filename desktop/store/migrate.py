"""Bring the local database to this app's schema: refuse a newer file, back up an older one, Alembic upgrade.

Order of operations in `upgrade` (qutebrowser's user_version scheme, done with Alembic revisions):

1. Read the file's revision through a read-only connection. A revision this app does not know was written
   by a newer IntegMed: raise `DatabaseTooNew` and leave the file exactly as it is (a read-only open does
   not even switch the journal mode).
2. At head: nothing to do.
3. Otherwise, when the file already holds data, copy it to ``backups/integmed-<UTC time>-<revision>.sqlite3``
   with SQLite's online backup API (a plain file copy would miss what is still in the ``-wal`` file).
4. Run every pending revision in **one** transaction, with foreign keys off (batch migrations rebuild tables,
   which would otherwise cascade or fail; SQLite's own advice, https://sqlite.org/lang_altertable.html) and
   ``PRAGMA foreign_key_check`` before the commit. A failure leaves the old revision in place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

import migrations
from desktop.errors import DatabaseTooNew, DatabaseUnavailable
from desktop.store.engine import BEGIN_OPTION, create_engine, translating_sqlite_errors

SCRIPT_LOCATION = Path(migrations.__file__).parent / "desktop"
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class MigrationReport:
    """What `upgrade` did.

    Args:
        from_revision: the file's revision before (``None`` for a new or empty file).
        to_revision: the file's revision now (this app's head).
        backup: the backup copy made before upgrading, if one was made.
    """

    from_revision: str | None
    to_revision: str
    backup: Path | None

    @property
    def changed(self) -> bool:
        """True when revisions were applied."""
        return self.from_revision != self.to_revision


def alembic_config(database: Path) -> Config:
    """An Alembic config for the desktop scripts and the given file (for tools and tests)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{database}".replace("%", "%%"))
    # Date-stamped file names like the server's: pass rev_id="YYYY_MM_DD_NNNN" when creating a revision.
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(SCRIPT_LOCATION))


def head_revision() -> str:
    """This app's schema revision."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the revisions ship with the app
        raise RuntimeError(f"no Alembic revisions under {SCRIPT_LOCATION}")
    return head


def current_revision(database: Path) -> str | None:
    """The file's schema revision, read without changing the file.

    Args:
        database: the SQLite file.

    Returns:
        The revision, or ``None`` when the file is missing, empty or was never migrated.

    Raises:
        DatabaseCorrupt: when the file is not an SQLite database.
    """
    if not database.exists() or database.stat().st_size == 0:
        return None
    with translating_sqlite_errors(database):
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
        try:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
            ).fetchone()
            if exists is None:
                return None
            rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        finally:
            conn.close()
    # One row per branch head; this app has a linear history, so more than one row is also "not ours".
    if not rows:
        return None
    return ",".join(sorted(str(row[0]) for row in rows))


def _is_known(revision: str) -> bool:
    if "," in revision:  # several heads: not a file this linear history wrote
        return False
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def backup(database: Path, backups_dir: Path, *, label: str, now: datetime | None = None) -> Path:
    """Copy the database, with whatever is still in its WAL, to a dated file in ``backups_dir``.

    Args:
        database: the SQLite file.
        backups_dir: the backups folder (created when missing).
        label: added to the file name (the revision being replaced).
        now: the time in the file name; the current UTC time by default.

    Returns:
        The backup file.

    Raises:
        DiskFull, DatabaseReadOnly, DatabaseUnavailable: when the copy cannot be written.
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        backups_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            "IntegMed cannot create its backups folder.", detail=str(exc), path=backups_dir
        ) from exc
    target = backups_dir / f"integmed-{stamp}-{label}.sqlite3"
    n = 1
    while target.exists():
        n += 1
        target = backups_dir / f"integmed-{stamp}-{label}-{n}.sqlite3"
    with translating_sqlite_errors(database):
        source = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
    return target


def run_in_one_transaction(database: Path, body: Callable[[sa.Connection], None]) -> None:
    """Run ``body`` on a connection in one IMMEDIATE transaction with foreign keys off; check them; commit.

    Args:
        database: the SQLite file.
        body: what to run (the Alembic environment's ``run_migrations``).

    Raises:
        RuntimeError: when the migrated data breaks a foreign key (nothing is committed).
    """
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            # PRAGMA foreign_keys is a no-op inside a transaction, so it goes before BEGIN, on the raw
            # connection (which is in autocommit mode; see desktop.store.engine).
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    body(conn)
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
    finally:
        engine.dispose()


def upgrade(database: Path, *, backups_dir: Path) -> MigrationReport:
    """Migrate the database file to this app's head revision (see the module docstring for the order).

    Args:
        database: the SQLite file; created when missing (its folder must exist).
        backups_dir: where a backup goes before an upgrade of an existing file.

    Returns:
        What was done.

    Raises:
        DatabaseTooNew: when the file was written by a newer IntegMed; the file is not touched.
        DatabaseCorrupt, DiskFull, DatabaseLocked, ...: storage problems, as `KnownError`s.
    """
    head = head_revision()
    found = current_revision(database)
    if found is not None and not _is_known(found):
        raise DatabaseTooNew(found, path=database)
    if found == head:
        return MigrationReport(found, head, None)
    copy = None
    if database.exists() and database.stat().st_size > 0:
        copy = backup(database, backups_dir, label=found or "unversioned")

    def _upgrade(conn: sa.Connection) -> None:
        cfg = alembic_config(database)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    run_in_one_transaction(database, _upgrade)
    return MigrationReport(found, head, copy)


def downgrade(database: Path, revision: str) -> None:
    """Downgrade the file to ``revision`` (support and tests only; the app never downgrades)."""

    def _downgrade(conn: sa.Connection) -> None:
        cfg = alembic_config(database)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

    run_in_one_transaction(database, _downgrade)
