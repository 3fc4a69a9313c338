"""Engine: pragmas on every connection, BEGIN control, SQLite errors translated into KnownErrors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from desktop.errors import DatabaseCorrupt, DatabaseLocked, DatabaseUnavailable, DiskFull
from desktop.store import LocalStore
from desktop.store.engine import create_engine, translate_sqlite_error


class TestPragmas:
    def test_every_pooled_connection_has_wal_foreign_keys_and_busy_timeout(self, local_store: LocalStore) -> None:
        engine = local_store.engine
        connections = [engine.connect() for _ in range(3)]  # three distinct DBAPI connections
        try:
            for conn in connections:
                pragma = conn.exec_driver_sql
                assert pragma("PRAGMA journal_mode").scalar() == "wal"
                assert pragma("PRAGMA foreign_keys").scalar() == 1
                assert pragma("PRAGMA busy_timeout").scalar() == 5000
                assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        finally:
            for conn in connections:
                conn.close()

    def test_foreign_keys_are_enforced(self, local_store: LocalStore) -> None:
        def write() -> None:
            with local_store.uow.write() as uow:
                uow.connection.exec_driver_sql(
                    "INSERT INTO patient_history (patient_id, field, value, hlc, replaced_by_hlc, side, source,"
                    " recorded_at) VALUES ('no-such-patient', 'name', '\"x\"', 'a', 'b', 'current', 'local', 'now')"
                )

        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
            local_store.writer.run(write)

    def test_write_transaction_takes_the_write_lock_at_begin(self, local_store: LocalStore) -> None:
        def probe() -> bool:
            with local_store.uow.write():
                # BEGIN IMMEDIATE holds the write lock before any statement: another writer must wait.
                other = sqlite3.connect(local_store.database, timeout=0)
                try:
                    other.execute("BEGIN IMMEDIATE")
                    other.rollback()
                    return False
                except sqlite3.OperationalError:
                    return True
                finally:
                    other.close()

        assert local_store.writer.run(probe)


class TestErrorTranslation:
    def test_locked_database_becomes_database_locked(self, local_store: LocalStore) -> None:
        engine = create_engine(local_store.database, busy_timeout_ms=50)
        holder = sqlite3.connect(local_store.database)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with engine.connect() as conn:
                conn.execution_options(integmed_begin="IMMEDIATE")
                with pytest.raises(DatabaseLocked) as caught:
                    conn.begin()
            assert caught.value.path == local_store.database
            assert "SQLITE_BUSY" in (caught.value.detail or "")
        finally:
            holder.rollback()
            holder.close()
            engine.dispose()

    def test_full_database_becomes_disk_full(self, local_store: LocalStore) -> None:
        with local_store.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            # max_page_count is per connection: this one may not grow the file, as on a full disk.
            conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
            conn.commit()
            with pytest.raises(DiskFull) as caught:
                conn.exec_driver_sql("INSERT INTO sync_state (key, value) VALUES ('big', ?)", ("x" * 200_000,))
        assert "disk" in caught.value.user_text().lower()

    def test_file_that_is_not_a_database_becomes_database_corrupt(self, tmp_path: Path) -> None:
        path = tmp_path / "garbage.sqlite3"
        path.write_bytes(b"this is not an SQLite file" * 100)
        engine = create_engine(path)
        try:
            with pytest.raises(DatabaseCorrupt), engine.connect() as conn:
                conn.exec_driver_sql("SELECT * FROM sqlite_schema").all()
        finally:
            engine.dispose()

    def test_unopenable_file_becomes_database_unavailable(self, tmp_path: Path) -> None:
        engine = create_engine(tmp_path / "missing-folder" / "integmed.sqlite3")
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                engine.connect()
        finally:
            engine.dispose()
        assert "SQLITE_CANTOPEN" in (caught.value.detail or "")

    def test_constraint_errors_stay_bugs(self) -> None:
        error = sqlite3.IntegrityError("UNIQUE constraint failed")
        error.sqlite_errorcode = sqlite3.SQLITE_CONSTRAINT
        assert translate_sqlite_error(error) is None
