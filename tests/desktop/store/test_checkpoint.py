"""WAL checkpoints run on the store's own thread after commits, not inside the writer's commits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from desktop.config import DesktopSettings
from desktop.services.patients import PatientService
from desktop.store import open_local_store
from desktop.store.checkpoint import THREAD_NAME
from tests.factories import make_patient


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_commits_reach_the_database_file_without_another_commit(desktop_settings: DesktopSettings) -> None:
    database: Path = desktop_settings.database_path
    threads_before = len(_checkpoint_threads())
    with open_local_store(database, backups_dir=desktop_settings.backups_dir) as store:
        assert len(_checkpoint_threads()) == threads_before + 1
        service = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
        size_before = database.stat().st_size
        for i in range(150):  # a few hundred WAL pages: far below the engine's own checkpoint bound
            service.register(make_patient(name=f"Checkpoint Person {i}"), actor="test")
        # The file grows only when a checkpoint copies the WAL into it; no commit follows the last one, so
        # only the checkpoint thread can do it. Polled, not timed: the test fails only if it never happens.
        for _ in range(1000):
            if database.stat().st_size > size_before:
                break
            time.sleep(0.01)
        assert database.stat().st_size > size_before
        with store.uow.read() as uow:
            assert uow.patients.count() >= 150
    assert len(_checkpoint_threads()) == threads_before  # closing the store stops its thread
