"""The single writer thread: every local database write in the process runs on it (STYLE §2.5).

SQLite allows one writer at a time. Funnelling all writes (screens, the CLI, the sync worker's apply and ack
steps) through one thread means they queue in our process instead of racing for the file lock, so the doctor
never meets "database is locked"; ``busy_timeout`` only has to cover a second *process* (``integmed sync``
while the app is open). This is Anki's collection executor idea.

`app.py` hands `Writer.executor` to the UI runner as a plain `concurrent.futures.Executor`. Service methods
that write call `Writer.run`, which runs the function inline when it is already on the writer thread (the
runner put it there) and otherwise submits it and waits, so the same service works from the GUI runner, the
CLI and tests without deadlocking the one worker. `desktop.store.unit_of_work` refuses to open a write
transaction on any other thread, so a write that bypasses the writer fails loudly in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

THREAD_NAME = "integmed-writer"


class Writer:
    """A one-worker executor that owns all local writes."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=THREAD_NAME, initializer=self._mark_thread
        )

    def _mark_thread(self) -> None:
        self._local.is_writer = True

    @property
    def executor(self) -> Executor:
        """The underlying executor, for the UI runner (`run_op`); submit writes only through it or `run`."""
        return self._executor

    def is_writer_thread(self) -> bool:
        """True when the calling thread is this writer's thread."""
        return bool(getattr(self._local, "is_writer", False))

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn`` on the writer thread (or run it now when called from the writer thread).

        Returns:
            A future with the result or the exception.
        """
        if self.is_writer_thread():
            future: Future[T] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller through the future, as the executor would
                future.set_exception(exc)
            return future
        return self._executor.submit(fn, *args, **kwargs)

    def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the writer thread and wait for it.

        Returns:
            What ``fn`` returned.

        Raises:
            Exception: whatever ``fn`` raised, re-raised in the calling thread.
        """
        if self.is_writer_thread():
            return fn(*args, **kwargs)
        return self._executor.submit(fn, *args, **kwargs).result()

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop accepting writes; with ``wait`` let the queued ones finish first."""
        self._executor.shutdown(wait=wait)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
