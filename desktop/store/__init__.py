"""Local store: SQLAlchemy 2 over one SQLite file; the only package of the desktop that runs SQL.

`open_local_store` is what a composition root (``desktop/app.py``, ``desktop/cli.py``, the sync commands)
calls to get everything the services need, in this order: create the data folder, migrate the database
(backup first; refuse a newer file), create the engine and the single writer, make sure this PC has a device
id, and start the hybrid logical clock above every stamp already stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from desktop.errors import DatabaseUnavailable
from desktop.store import migrate
from desktop.store.checkpoint import Checkpointer
from desktop.store.engine import create_engine
from desktop.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from desktop.store.writer import Writer
from shared.clock import DESKTOP_MAX_DRIFT_MS, HLC, WallClock, system_wall_ms

__all__ = ["LocalStore", "UnitOfWork", "UnitOfWorkFactory", "Writer", "open_local_store"]


@dataclass
class LocalStore:
    """The opened store; close it (or use it as a context manager) when the program ends.

    Args:
        database: the SQLite file.
        engine: its engine.
        writer: the single writer thread.
        uow: makes units of work (``uow.write()`` on the writer thread, ``uow.read()`` anywhere).
        clock: this PC's hybrid logical clock (node id = device id).
        migration: what opening did to the schema (a backup path when it upgraded an existing file).
        checkpointer: moves the WAL into the database file after commits, off the writer's thread.
    """

    database: Path
    engine: Engine
    writer: Writer
    uow: UnitOfWorkFactory
    clock: HLC
    migration: migrate.MigrationReport
    checkpointer: Checkpointer

    def close(self) -> None:
        """Let queued writes finish, then close every connection (WAL is checkpointed on the last one)."""
        self.writer.shutdown(wait=True)
        self.checkpointer.close()
        self.engine.dispose()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_local_store(
    database: Path,
    *,
    backups_dir: Path,
    wall_clock: WallClock = system_wall_ms,
    busy_timeout_ms: int | None = None,
) -> LocalStore:
    """Open (creating or upgrading as needed) the local database.

    Args:
        database: the SQLite file (``DesktopSettings.database_path``).
        backups_dir: where the pre-upgrade backup goes (``DesktopSettings.backups_dir``).
        wall_clock: the clock's time source (tests pass a fake).
        busy_timeout_ms: override of the engine's lock wait.

    Returns:
        The open store.

    Raises:
        DatabaseTooNew, DatabaseCorrupt, DiskFull, DatabaseUnavailable, ...: as `KnownError`s.
    """
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            "IntegMed cannot create its data folder.", detail=str(exc), path=database.parent
        ) from exc
    report = migrate.upgrade(database, backups_dir=backups_dir)
    engine = (
        create_engine(database) if busy_timeout_ms is None else create_engine(database, busy_timeout_ms=busy_timeout_ms)
    )
    writer = Writer()
    checkpointer = Checkpointer(engine)
    factory = UnitOfWorkFactory(engine, writer, on_commit=checkpointer.poke)
    try:
        clock = writer.run(_start_clock, factory, wall_clock)
    except BaseException:
        writer.shutdown()
        checkpointer.close()
        engine.dispose()
        raise
    return LocalStore(database, engine, writer, factory, clock, report, checkpointer)


def _start_clock(factory: UnitOfWorkFactory, wall_clock: WallClock) -> HLC:
    with factory.write() as uow:
        device_id = uow.sync_state.ensure_device_id()
        floor = uow.sync_state.clock_floor()
        uow.commit()
    # A desktop accepts stamps up to a day ahead of its own clock: the server bounds what it hands out, and
    # a PC whose clock is a day slow must still be able to sync (shared/clock.py explains the bounds).
    return HLC(str(device_id), wall_clock=wall_clock, max_drift_ms=DESKTOP_MAX_DRIFT_MS, last=floor)
