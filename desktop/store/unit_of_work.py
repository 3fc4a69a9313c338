"""Unit of work: one SQLite transaction with the repositories hanging off it; `UnitOfWork.commit` is the only commit.

Use::

    with uow_factory.write() as uow:          # on the writer thread (desktop.store.writer)
        uow.patients.insert(...)
        uow.outbox.append(...)                  # same transaction: both or neither
        uow.commit()

    with uow_factory.read() as uow:           # any thread; a consistent snapshot, never commits
        uow.patients.search("radha")

Leaving the block without `commit` rolls back, whether by an exception or by forgetting. A write unit of work
begins with ``BEGIN IMMEDIATE`` (see `desktop.store.engine`) and may only be opened on the writer thread;
opening one elsewhere raises ``RuntimeError``, because it means a write bypassed the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from desktop.store.engine import BEGIN_OPTION
from desktop.store.outbox import OutboxRepository
from desktop.store.patients import PatientRepository
from desktop.store.sync_state import SyncStateRepository
from desktop.store.writer import Writer


class UnitOfWork:
    """One transaction on one pooled connection.

    Args:
        engine: the store's engine.
        write: True for a write transaction (``BEGIN IMMEDIATE``, may commit), False for a read snapshot.
    """

    patients: PatientRepository
    outbox: OutboxRepository
    sync_state: SyncStateRepository

    def __init__(self, engine: Engine, *, write: bool, on_commit: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._write = write
        self._on_commit = on_commit
        self._conn: sa.Connection | None = None
        self._tx: sa.RootTransaction | None = None

    @property
    def connection(self) -> sa.Connection:
        """The connection (for repositories of other record kinds; never for SQL outside `desktop.store`)."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open (use it in a with block)")
        return self._conn

    def __enter__(self) -> UnitOfWork:
        conn = self._engine.connect()
        try:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE" if self._write else "DEFERRED"})
            self._tx = conn.begin()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.patients = PatientRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.sync_state = SyncStateRepository(conn)
        return self

    def commit(self) -> None:
        """Commit the transaction: the one place the desktop commits."""
        if not self._write:
            raise RuntimeError("a read unit of work cannot commit")
        if self._tx is None or not self._tx.is_active:
            raise RuntimeError("nothing to commit: the unit of work is not open or already finished")
        self._tx.commit()
        if self._on_commit is not None:
            self._on_commit()

    def rollback(self) -> None:
        """Abandon the transaction now (leaving the block does it too)."""
        if self._tx is not None and self._tx.is_active:
            self._tx.rollback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.rollback()
        finally:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._tx = None


class UnitOfWorkFactory:
    """Makes units of work on one engine; write ones only on the writer's thread.

    Args:
        engine: the store's engine.
        writer: the process's single writer.
        on_commit: called after each commit of a write unit of work (the store pokes its checkpointer).
    """

    def __init__(self, engine: Engine, writer: Writer, on_commit: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._writer = writer
        self._on_commit = on_commit

    @property
    def writer(self) -> Writer:
        """The writer whose thread write units of work must run on."""
        return self._writer

    def write(self) -> UnitOfWork:
        """A write unit of work; call on the writer thread (``writer.run(fn)``)."""
        if not self._writer.is_writer_thread():
            raise RuntimeError(
                "local writes must run on the writer thread: wrap the call in writer.run(...) (desktop/store/writer.py)"
            )
        return UnitOfWork(self._engine, write=True, on_commit=self._on_commit)

    def read(self) -> UnitOfWork:
        """A read-only snapshot on the calling thread."""
        return UnitOfWork(self._engine, write=False)
