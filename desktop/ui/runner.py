"""The runner: service calls off the GUI thread, with the result or the error handed back on it (STYLE §2.5).

Screens never call a service directly. They hand a function to the runner:

* `run_op` for a local write: it runs on the single writer executor (`desktop/store/writer.py`, passed in by
  `app.py` as a plain `Executor`), so every write in the process is serialised on one thread;
* `run_query` for a read and `run_network` for a call to the server: they run on a small parallel pool, so a
  slow sync never queues behind, or in front of, the doctor's own saves.

The function runs on a worker thread and must not touch widgets. When it finishes, the worker emits a signal
carrying the outcome through a queued connection, and the runner calls `on_success(result)` or
`on_failure(exc)` on the GUI thread (Anki's `CollectionOp`/`QueryOp` on top of `taskman`). A failure with no
`on_failure` goes to the error presenter (`ui/error_dialogs.py`); a `Cancelled` error is shown to no one.
`busy_changed(count)` drives the status bar's spinner, and `op_succeeded(result)` carries each write's result
(a `ChangeSet`) for the main window to re-broadcast.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import QWidget
from shiboken6 import isValid

from desktop.ui.error_dialogs import is_cancellation, present_error
from desktop.ui.signals import emit

logger = logging.getLogger(__name__)

T = TypeVar("T")
PresentError = Callable[[QWidget | None, BaseException], object]

POOL_WORKERS = 4
POOL_THREAD_NAME = "integmed-pool"


@dataclass(eq=False)
class _Job:
    """One submitted call, from submission on the GUI thread to delivery back on it."""

    kind: str
    parent: QWidget | None
    on_success: Callable[[Any], object] | None
    on_failure: Callable[[BaseException], object] | None
    on_cancelled: Callable[[], object] | None
    future: Future[Any] | None = None


class Runner(QObject):
    """Runs service calls on worker threads and delivers their outcome on the GUI thread.

    Args:
        writer: the single-thread executor every local write goes through (owned by the store; not shut
            down here).
        pool: executor for reads and network calls; by default the runner makes and owns a small one.
        error_presenter: called as `error_presenter(parent, exc)` for failures without an `on_failure`;
            `app.py` passes an `ErrorPresenter` that knows the log file.
        parent: Qt parent of the runner.

    Call `run_*` from the GUI thread. Callbacks whose `parent` widget has been deleted in the meantime are
    skipped; a failure is then still presented, without a parent.
    """

    busy_changed = Signal(int)
    op_succeeded = Signal(object)
    _job_finished = Signal(object)

    def __init__(
        self,
        writer: Executor,
        pool: Executor | None = None,
        *,
        error_presenter: PresentError = present_error,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._writer = writer
        self._owns_pool = pool is None
        self._pool: Executor = pool or ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix=POOL_THREAD_NAME)
        self._present_error = error_presenter
        self._busy = 0
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Queued even when emitted on the GUI thread: callbacks never run inside run_*().
        self._job_finished.connect(self._on_job_finished, Qt.ConnectionType.QueuedConnection)

    @property
    def busy_count(self) -> int:
        """Calls submitted and not yet delivered."""
        return self._busy

    def run_op(
        self,
        parent: QWidget | None,
        fn: Callable[[], T],
        on_success: Callable[[T], object] | None = None,
        on_failure: Callable[[BaseException], object] | None = None,
        *,
        on_cancelled: Callable[[], object] | None = None,
    ) -> Future[T]:
        """Run the write `fn` on the writer thread; the result also goes out as `op_succeeded`."""
        return self._submit(self._writer, "op", parent, fn, on_success, on_failure, on_cancelled)

    def run_query(
        self,
        parent: QWidget | None,
        fn: Callable[[], T],
        on_success: Callable[[T], object] | None = None,
        on_failure: Callable[[BaseException], object] | None = None,
        *,
        on_cancelled: Callable[[], object] | None = None,
    ) -> Future[T]:
        """Run the read `fn` on the pool."""
        return self._submit(self._pool, "query", parent, fn, on_success, on_failure, on_cancelled)

    def run_network(
        self,
        parent: QWidget | None,
        fn: Callable[[], T],
        on_success: Callable[[T], object] | None = None,
        on_failure: Callable[[BaseException], object] | None = None,
        *,
        on_cancelled: Callable[[], object] | None = None,
    ) -> Future[T]:
        """Run `fn`, which talks to the server, on the pool."""
        return self._submit(self._pool, "network", parent, fn, on_success, on_failure, on_cancelled)

    def shutdown(self, *, wait_s: float | None = None) -> None:
        """Refuse new work, wait for submitted calls to finish, and stop the runner's own pool.

        Outcomes not yet delivered are dropped: the windows they were for are closing. The writer executor
        belongs to the store and is left running.
        """
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        _, not_done = wait(pending, timeout=wait_s)
        if not_done:
            logger.warning("Runner shut down with %d call(s) still running", len(not_done))
        if self._owns_pool:
            self._pool.shutdown(wait=wait_s is None)

    def _submit(
        self,
        executor: Executor,
        kind: str,
        parent: QWidget | None,
        fn: Callable[[], T],
        on_success: Callable[[T], object] | None,
        on_failure: Callable[[BaseException], object] | None,
        on_cancelled: Callable[[], object] | None,
    ) -> Future[T]:
        if QThread.currentThread() is not self.thread():
            raise RuntimeError("Runner.run_* must be called from the GUI thread")
        job = _Job(kind, parent, on_success, on_failure, on_cancelled)
        with self._lock:
            if self._closed:
                raise RuntimeError("the runner has been shut down")
            future = executor.submit(fn)
            job.future = future
            self._pending.add(future)
        self._set_busy(self._busy + 1)
        future.add_done_callback(lambda _f: self._finished_on_worker(job))
        return future

    def _finished_on_worker(self, job: _Job) -> None:
        # Runs on the worker thread (or here, if the future was already done): only emit, touch nothing else.
        emit(self._job_finished, job)

    @Slot(object)
    def _on_job_finished(self, job: _Job) -> None:
        future = job.future
        assert future is not None
        with self._lock:
            self._pending.discard(future)
            closed = self._closed
        self._set_busy(self._busy - 1)
        if closed:
            return
        parent_alive = job.parent is None or isValid(job.parent)
        error = _error_of(future)
        if error is None:
            result = future.result()
            if job.kind == "op":
                emit(self.op_succeeded, result)
            if job.on_success is not None and parent_alive:
                job.on_success(result)
        elif is_cancellation(error):
            logger.info("%s call cancelled", job.kind)
            if job.on_cancelled is not None and parent_alive:
                job.on_cancelled()
        elif job.on_failure is not None and parent_alive:
            job.on_failure(error)
        else:
            self._present_error(job.parent if parent_alive else None, error)

    def _set_busy(self, count: int) -> None:
        self._busy = count
        emit(self.busy_changed, count)


def _error_of(future: Future[Any]) -> BaseException | None:
    if future.cancelled():
        return CancelledError()
    return future.exception()
