"""Runner: calls run off the GUI thread, outcomes come back on it, writes are serialised, busy is counted."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as real_wait
from typing import Any

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot
from shiboken6 import delete

from desktop.errors import Cancelled, DiskFull
from desktop.ui import runner as runner_module
from desktop.ui.runner import Runner

WRITER_THREAD = "test-writer"


class RecordingPresenter:
    """Stands in for the error dialogs: records what would have been shown, and on which thread."""

    def __init__(self) -> None:
        self.shown: list[tuple[QWidget | None, BaseException]] = []
        self.threads: list[QThread] = []

    def __call__(self, parent: QWidget | None, exc: BaseException) -> None:
        self.shown.append((parent, exc))
        self.threads.append(QThread.currentThread())


@pytest.fixture
def writer() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=WRITER_THREAD)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def presenter() -> RecordingPresenter:
    return RecordingPresenter()


@pytest.fixture
def runner(qapp: QApplication, writer: ThreadPoolExecutor, presenter: RecordingPresenter) -> Iterator[Runner]:
    instance = Runner(writer, error_presenter=presenter)
    yield instance
    instance.shutdown()


def _idle(runner: Runner) -> bool:
    return runner.busy_count == 0


class TestDelivery:
    def test_success_arrives_on_the_gui_thread(self, qtbot: QtBot, qapp: QApplication, runner: Runner) -> None:
        seen: dict[str, Any] = {}

        def work() -> str:
            seen["work_thread"] = threading.current_thread().name
            return "saved"

        def on_success(result: str) -> None:
            seen["result"] = result
            seen["callback_qthread"] = QThread.currentThread()

        runner.run_op(None, work, on_success)
        qtbot.waitUntil(lambda: "result" in seen)
        assert seen["result"] == "saved"
        assert seen["work_thread"].startswith(WRITER_THREAD)
        assert seen["callback_qthread"] is qapp.thread()

    def test_failure_arrives_on_the_gui_thread(
        self, qtbot: QtBot, qapp: QApplication, runner: Runner, presenter: RecordingPresenter
    ) -> None:
        seen: dict[str, Any] = {}

        def on_failure(exc: BaseException) -> None:
            seen["error"] = exc
            seen["callback_qthread"] = QThread.currentThread()

        runner.run_op(None, _raise(DiskFull()), on_success=_unexpected, on_failure=on_failure)
        qtbot.waitUntil(lambda: "error" in seen)
        assert isinstance(seen["error"], DiskFull)
        assert seen["callback_qthread"] is qapp.thread()
        assert presenter.shown == []

    def test_failure_without_handler_goes_to_the_presenter_on_the_gui_thread(
        self, qtbot: QtBot, qapp: QApplication, runner: Runner, presenter: RecordingPresenter
    ) -> None:
        parent = QWidget()
        qtbot.addWidget(parent)
        runner.run_query(parent, _raise(ValueError("bug")))
        qtbot.waitUntil(lambda: bool(presenter.shown))
        ((shown_parent, exc),) = presenter.shown
        assert shown_parent is parent
        assert isinstance(exc, ValueError)
        assert presenter.threads == [qapp.thread()]

    def test_callbacks_never_run_inside_run_op(self, qtbot: QtBot, runner: Runner) -> None:
        calls: list[str] = []
        future = runner.run_op(None, lambda: 1, lambda _result: calls.append("success"))
        future.result()  # the work is done, but delivery waits for the event loop
        assert calls == []
        qtbot.waitUntil(lambda: calls == ["success"])

    def test_op_result_is_broadcast_and_query_result_is_not(self, qtbot: QtBot, runner: Runner) -> None:
        broadcast: list[object] = []
        runner.op_succeeded.connect(broadcast.append)
        runner.run_query(None, lambda: "rows")
        with qtbot.waitSignal(runner.op_succeeded):
            runner.run_op(None, lambda: {"patient": ["p-1"]})
        qtbot.waitUntil(lambda: _idle(runner))
        assert broadcast == [{"patient": ["p-1"]}]

    def test_callbacks_for_a_deleted_widget_are_skipped_but_errors_still_shown(
        self, qtbot: QtBot, runner: Runner, presenter: RecordingPresenter
    ) -> None:
        release = threading.Event()
        calls: list[str] = []
        parent = QWidget()
        runner.run_op(parent, lambda: release.wait(5), lambda _r: calls.append("success"))
        runner.run_op(parent, _raise(ValueError("bug")), on_failure=lambda _e: calls.append("failure"))
        delete(parent)
        release.set()
        qtbot.waitUntil(lambda: _idle(runner))
        assert calls == []
        assert [(p, type(e)) for p, e in presenter.shown] == [(None, ValueError)]

    def test_run_from_a_worker_thread_is_refused(self, runner: Runner) -> None:
        with ThreadPoolExecutor(max_workers=1) as other:
            error = other.submit(lambda: runner.run_query(None, lambda: 1)).exception()
        assert isinstance(error, RuntimeError)


class TestCancelled:
    def test_cancelled_error_is_shown_to_no_one(
        self, qtbot: QtBot, runner: Runner, presenter: RecordingPresenter
    ) -> None:
        cancelled: list[bool] = []
        runner.run_network(
            None, _raise(Cancelled()), on_success=_unexpected, on_cancelled=lambda: cancelled.append(True)
        )
        runner.run_network(None, _raise(Cancelled()))
        qtbot.waitUntil(lambda: _idle(runner))
        assert cancelled == [True]
        assert presenter.shown == []

    def test_future_cancelled_before_it_ran_is_silent(
        self, qtbot: QtBot, runner: Runner, presenter: RecordingPresenter
    ) -> None:
        release = threading.Event()
        runner.run_op(None, lambda: release.wait(5))
        queued = runner.run_op(None, lambda: "never", on_success=_unexpected, on_failure=_unexpected)
        assert queued.cancel()
        release.set()
        qtbot.waitUntil(lambda: _idle(runner))
        assert presenter.shown == []


class TestThreads:
    def test_writes_are_serialised_on_one_thread_in_order(self, qtbot: QtBot, runner: Runner) -> None:
        lock = threading.Lock()
        state = {"inside": 0, "max_inside": 0}
        threads: set[int] = set()
        order: list[int] = []

        def write(n: int) -> int:
            with lock:
                state["inside"] += 1
                state["max_inside"] = max(state["max_inside"], state["inside"])
                threads.add(threading.get_ident())
            order.append(n)
            with lock:
                state["inside"] -= 1
            return n

        delivered: list[int] = []
        for n in range(50):
            runner.run_op(None, functools.partial(write, n), delivered.append)
        qtbot.waitUntil(lambda: len(delivered) == 50)
        assert order == list(range(50))
        assert delivered == list(range(50))
        assert len(threads) == 1
        assert state["max_inside"] == 1

    def test_queries_run_in_parallel_off_the_writer(self, qtbot: QtBot, runner: Runner) -> None:
        barrier = threading.Barrier(2, timeout=5)  # only passes if both queries run at the same time
        names: list[str] = []

        def query() -> str:
            barrier.wait()
            return threading.current_thread().name

        runner.run_query(None, query, names.append)
        runner.run_network(None, query, names.append)
        qtbot.waitUntil(lambda: len(names) == 2)
        assert all(name.startswith(runner_module.POOL_THREAD_NAME) for name in names)


class TestBusy:
    def test_busy_counts_up_and_back_to_zero(self, qtbot: QtBot, runner: Runner) -> None:
        counts: list[int] = []
        runner.busy_changed.connect(counts.append)
        release = threading.Event()
        runner.run_op(None, lambda: release.wait(5))
        runner.run_query(None, lambda: release.wait(5))
        runner.run_network(None, _raise(Cancelled()))
        assert runner.busy_count == 3
        assert counts == [1, 2, 3]
        release.set()
        qtbot.waitUntil(lambda: _idle(runner))
        assert counts[-1] == 0
        assert len(counts) == 6
        assert all(0 <= count <= 3 for count in counts)


class TestShutdown:
    def test_shutdown_waits_for_running_work_and_drops_its_callbacks(
        self, qtbot: QtBot, writer: ThreadPoolExecutor, presenter: RecordingPresenter, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        runner = Runner(writer, error_presenter=presenter)
        started, release, finished = threading.Event(), threading.Event(), threading.Event()
        calls: list[str] = []

        def slow_write() -> None:
            started.set()
            release.wait(5)
            finished.set()

        def wait_releasing(futures: Any, timeout: float | None = None) -> Any:
            # The write is still blocked when shutdown starts waiting; let it go only now.
            assert not finished.is_set()
            release.set()
            return real_wait(futures, timeout=timeout)

        monkeypatch.setattr(runner_module, "wait", wait_releasing)
        runner.run_op(None, slow_write, lambda _r: calls.append("success"))
        assert started.wait(5)
        runner.shutdown()
        assert finished.is_set()
        with pytest.raises(RuntimeError, match="shut down"):
            runner.run_op(None, lambda: None)
        qtbot.waitUntil(lambda: _idle(runner))
        assert calls == []


def _raise(exc: BaseException) -> Any:
    def fn() -> None:
        raise exc

    return fn


def _unexpected(*_args: object) -> None:
    raise AssertionError("this callback must not run")
