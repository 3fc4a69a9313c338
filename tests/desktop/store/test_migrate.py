"""Migrations: create, no-op at head, backup before upgrading, refuse a newer file untouched, schema = tables.py."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from desktop.config import DATABASE_FILE
from desktop.errors import DatabaseCorrupt, DatabaseTooNew
from desktop.store import migrate, open_local_store, tables
from desktop.store.engine import create_engine
from tests.desktop.conftest import copy_template


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _revisions(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    finally:
        conn.close()


class TestUpgrade:
    def test_creates_a_new_database_at_head_without_a_backup(self, tmp_path: Path) -> None:
        database = tmp_path / DATABASE_FILE
        report = migrate.upgrade(database, backups_dir=tmp_path / "backups")
        assert (report.from_revision, report.to_revision, report.backup) == (None, migrate.head_revision(), None)
        assert _revisions(database) == [migrate.head_revision()]
        assert not (tmp_path / "backups").exists()

    def test_database_at_head_is_left_alone(self, tmp_path: Path, sqlite_template: Path) -> None:
        database = copy_template(sqlite_template, tmp_path)
        before = _digest(database)
        report = migrate.upgrade(database, backups_dir=tmp_path / "backups")
        assert not report.changed
        assert report.backup is None
        assert _digest(database) == before

    def test_older_database_is_backed_up_then_upgraded(self, tmp_path: Path, sqlite_template: Path) -> None:
        database = copy_template(sqlite_template, tmp_path)
        migrate.downgrade(database, "base")
        conn = sqlite3.connect(database)
        conn.execute("CREATE TABLE keepsake (note TEXT)")
        conn.execute("INSERT INTO keepsake VALUES ('राधा कुमारी, 1990')")
        conn.commit()
        conn.close()

        report = migrate.upgrade(database, backups_dir=tmp_path / "backups")

        assert report.changed
        assert report.backup is not None
        assert report.backup.parent == tmp_path / "backups"
        assert report.backup.name.startswith("integmed-") and report.backup.name.endswith(".sqlite3")
        backup = sqlite3.connect(report.backup)
        try:
            assert backup.execute("SELECT note FROM keepsake").fetchall() == [("राधा कुमारी, 1990",)]
            assert backup.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'patients'").fetchone() == (0,)
        finally:
            backup.close()
        assert _revisions(database) == [migrate.head_revision()]

    def test_backup_includes_changes_still_in_the_wal(self, tmp_path: Path, sqlite_template: Path) -> None:
        database = copy_template(sqlite_template, tmp_path)
        writer = sqlite3.connect(database)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # keep the row in the -wal file only
        writer.execute("INSERT INTO sync_state VALUES ('note', 'only in the WAL')")
        writer.commit()
        try:
            copy = migrate.backup(database, tmp_path / "backups", label="test")
        finally:
            writer.close()
        conn = sqlite3.connect(copy)
        try:
            assert conn.execute("SELECT value FROM sync_state WHERE key = 'note'").fetchone() == ("only in the WAL",)
        finally:
            conn.close()

    def test_file_from_a_newer_app_is_refused_and_not_touched(self, tmp_path: Path, sqlite_template: Path) -> None:
        database = copy_template(sqlite_template, tmp_path)
        conn = sqlite3.connect(database)
        conn.execute("UPDATE alembic_version SET version_num = '2099_01_01_0001'")
        conn.commit()
        conn.close()
        before = _digest(database)

        with pytest.raises(DatabaseTooNew) as caught:
            migrate.upgrade(database, backups_dir=tmp_path / "backups")
        with pytest.raises(DatabaseTooNew):
            open_local_store(database, backups_dir=tmp_path / "backups")

        assert caught.value.revision == "2099_01_01_0001"
        assert "newer version" in caught.value.user_text()
        assert _digest(database) == before
        assert _revisions(database) == ["2099_01_01_0001"]
        assert not (tmp_path / "backups").exists()

    def test_file_that_is_not_sqlite_is_reported_as_corrupt(self, tmp_path: Path) -> None:
        database = tmp_path / DATABASE_FILE
        database.write_bytes(b"PK\x03\x04 a zip file, not a database" * 50)
        with pytest.raises(DatabaseCorrupt):
            migrate.upgrade(database, backups_dir=tmp_path / "backups")


class TestSchema:
    def test_table_definitions_match_the_migrated_schema(self, sqlite_template: Path, tmp_path: Path) -> None:
        database = copy_template(sqlite_template, tmp_path)
        engine = create_engine(database)

        def include(name: str | None, type_: str, parent: object) -> bool:
            if type_ == "table" and name is not None and name.startswith(tables.SEARCH_TABLE):
                return name == tables.patient_search_docs.name
            return True

        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"include_name": include, "compare_type": True})
                assert compare_metadata(context, tables.metadata) == []
        finally:
            engine.dispose()

    def test_search_index_and_its_triggers_exist(self, sqlite_template: Path) -> None:
        conn = sqlite3.connect(f"{sqlite_template.as_uri()}?mode=ro", uri=True)
        try:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'")}
            sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'patient_search'").fetchone()[0]
        finally:
            conn.close()
        assert {"patients_search_insert", "patients_search_update", "patients_search_delete"} <= names
        assert "fts5" in sql.lower() and "M*" in sql

    def test_downgrade_to_base_and_upgrade_again(self, tmp_path: Path, sqlite_template: Path) -> None:
        database = copy_template(sqlite_template, tmp_path)
        migrate.downgrade(database, "base")
        assert migrate.current_revision(database) is None
        migrate.upgrade(database, backups_dir=tmp_path / "backups")
        assert migrate.current_revision(database) == migrate.head_revision()
