"""Desktop fixtures: a SQLite template migrated once per session, copied into each test's own data folder.

Migrating takes far longer than copying a file, so the session migrates one template (Anki's
``pylib/tests/shared.py`` idea) and every test gets a private copy in ``tmp_path``: a real file in WAL mode,
never ``:memory:`` (STYLE §2.8).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.config import DATABASE_FILE, DesktopSettings
from desktop.services.patients import PatientService
from desktop.store import LocalStore, migrate, open_local_store


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file at this app's head revision (read-only by convention: copy it, never open it)."""
    path = tmp_path_factory.mktemp("sqlite-template") / DATABASE_FILE
    migrate.upgrade(path, backups_dir=path.parent / "backups")
    # The migration's engine is disposed, so SQLite has checkpointed and removed the WAL: one file is
    # the whole database.
    assert not path.with_name(path.name + "-wal").exists()
    return path


def copy_template(template: Path, data_dir: Path) -> Path:
    """Copy the template into ``data_dir`` as the database file; returns its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / DATABASE_FILE
    shutil.copyfile(template, target)
    return target


@pytest.fixture
def data_dir(tmp_path: Path, sqlite_template: Path) -> Path:
    """A data folder holding a migrated database of this test's own."""
    folder = tmp_path / "data"
    copy_template(sqlite_template, folder)
    return folder


@pytest.fixture
def desktop_settings(data_dir: Path) -> DesktopSettings:
    """Settings pointing at this test's data folder."""
    return DesktopSettings(data_dir=data_dir)


@pytest.fixture
def local_store(desktop_settings: DesktopSettings) -> Iterator[LocalStore]:
    """The opened store (engine, writer thread, clock), closed after the test."""
    with open_local_store(desktop_settings.database_path, backups_dir=desktop_settings.backups_dir) as store:
        yield store


@pytest.fixture
def patient_service(local_store: LocalStore) -> PatientService:
    """The patient service on this test's store."""
    return PatientService(writer=local_store.writer, uow=local_store.uow, clock=local_store.clock)
