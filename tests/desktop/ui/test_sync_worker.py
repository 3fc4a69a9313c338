"""SyncWorker and the first-sync dialog with scripted sync clients: one round at a time, reporting, cancel, sign-in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.errors import Cancelled, ServerUnreachable
from desktop.progress import Progress
from desktop.services.sync_status import SyncStatus
from desktop.sync.errors import DeviceSignInRequired
from desktop.ui.bridges.sync_worker import SyncTimings, SyncWorker
from desktop.ui.runner import Runner
from desktop.ui.screens.first_sync import FirstSyncDialog
from tests.desktop.ui.conftest import RecordingPresenter

SLOW = SyncTimings(round_interval_ms=600_000, probe_interval_ms=600_000, after_write_ms=20)


@dataclass
class Report:
    pushed: int = 0
    pulled: int = 0
    inserted: int = 0
    updated: int = 0
    pending: int = 0
    rejected: list[Any] = field(default_factory=list)


class ScriptedClient:
    """A sync client whose rounds do what the test says: wait for a gate, report progress, fail."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.rounds = 0
        self.running = 0
        self.most_at_once = 0
        self.failure: BaseException | None = None
        self.pages: list[int] = []  # records per page; the total is their sum
        self._lock = threading.Lock()

    def run_once(self, progress: Progress | None = None) -> Report:
        with self._lock:
            self.rounds += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            assert progress is not None
            if self.pages:
                progress.set_total(sum(self.pages))
            for page in self.pages:
                if progress.cancelled:
                    raise Cancelled()
                progress.advance(page)
                self.gate.wait(10)
            self.gate.wait(10)
            if self.failure is not None:
                raise self.failure
            return Report(pulled=sum(self.pages), inserted=sum(self.pages))
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def runner(qapp: QApplication, presenter: RecordingPresenter) -> Iterator[Runner]:
    from concurrent.futures import ThreadPoolExecutor

    writer = ThreadPoolExecutor(max_workers=1)
    instance = Runner(writer, error_presenter=presenter)
    yield instance
    instance.shutdown()
    writer.shutdown()


@pytest.fixture
def client() -> ScriptedClient:
    return ScriptedClient()


@pytest.fixture
def make_worker(runner: Runner, client: ScriptedClient) -> Callable[..., SyncWorker]:
    def make(*, probe: Callable[[], bool] = lambda: True, forget: Callable[[], None] | None = None) -> SyncWorker:
        status = SyncStatus(pending=0, last_synced_at=datetime.now(UTC), last_error=None, has_synced=True)
        return SyncWorker(
            runner,
            make_client=lambda: client,
            probe=probe,
            read_status=lambda: status,
            forget_device=forget,
            timings=SLOW,
        )

    return make


class TestSyncWorker:
    def test_never_two_rounds_at_once_and_a_request_meanwhile_runs_after(
        self, qtbot: QtBot, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        worker = make_worker()
        client.gate.clear()
        finished: list[bool] = []
        worker.sync_finished.connect(lambda _report, user_started: finished.append(user_started))
        assert worker.sync_now(user_started=False) is True
        assert worker.sync_now(user_started=True) is False  # queued behind the running round
        assert worker.sync_now(user_started=False) is False
        client.gate.set()
        qtbot.waitUntil(lambda: len(finished) == 2)
        assert finished == [False, True]  # the queued round reports to the user who asked
        assert client.rounds == 2 and client.most_at_once == 1
        assert not worker.is_running

    def test_unreachable_server_turns_offline_and_a_probe_brings_it_back_with_a_round(
        self, qtbot: QtBot, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        answers = [True]
        worker = make_worker(probe=lambda: answers[-1])
        client.failure = ServerUnreachable(detail="refused")
        with qtbot.waitSignal(worker.sync_failed) as failed:
            worker.sync_now(user_started=False)
        assert isinstance(failed.args[0], ServerUnreachable) and failed.args[1] is False
        assert worker.online is False
        worker.start()
        client.failure = None
        with qtbot.waitSignal(worker.sync_finished, timeout=5000):
            pass  # start() probed; the server answered after being away, so a round followed
        assert worker.online is True
        worker.stop()

    def test_refused_device_forgets_the_token_and_asks_for_sign_in(
        self, qtbot: QtBot, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        forgotten: list[bool] = []
        worker = make_worker(forget=lambda: forgotten.append(True))
        worker.start()
        client.failure = DeviceSignInRequired(detail="revoked")
        with qtbot.waitSignal(worker.sign_in_required) as asked:
            worker.sync_now(user_started=False)
        assert isinstance(asked.args[0], DeviceSignInRequired)
        assert not worker.is_active
        qtbot.waitUntil(lambda: forgotten == [True])

    def test_local_write_starts_a_round_soon(
        self, qtbot: QtBot, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        worker = make_worker()
        worker.start()
        qtbot.waitUntil(lambda: worker.online is True)
        with qtbot.waitSignal(worker.sync_finished, timeout=5000) as finished:
            worker.on_local_change(object())
        assert finished.args[1] is False
        worker.stop()


class TestFirstSyncDialog:
    def test_shows_counts_and_time_left_then_closes(
        self, qtbot: QtBot, ui_app: QApplication, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        worker = make_worker()
        ticks = iter(float(n) for n in range(1000))
        dialog = FirstSyncDialog(worker, clinic_name="Sharma Family Clinic", clock=lambda: next(ticks))
        qtbot.addWidget(dialog)
        client.pages = [1000, 1000, 1000, 1000, 1000]
        client.gate.clear()
        dialog.start()
        qtbot.waitUntil(lambda: dialog.progress_text == "1,000 of 5,000 records")
        assert dialog.bar.maximum() == 5000 and dialog.bar.value() == 1000
        assert dialog.eta_text.endswith("left")
        with qtbot.waitSignal(dialog.finished_ok, timeout=5000) as done:
            client.gate.set()
        assert done.args[0].inserted == 5000
        assert not dialog.isVisible()

    def test_cancel_stops_between_pages(
        self, qtbot: QtBot, ui_app: QApplication, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        worker = make_worker()
        dialog = FirstSyncDialog(worker)
        qtbot.addWidget(dialog)
        client.pages = [10, 10, 10]
        client.gate.clear()
        dialog.start()
        qtbot.waitUntil(lambda: dialog.progress_text == "10 of 30 records")
        dialog.on_cancel_button_clicked()  # the Cancel button / Esc
        assert dialog.cancelled
        with qtbot.waitSignal(dialog.rejected, timeout=5000):
            client.gate.set()
        assert client.rounds == 1

    def test_failure_is_said_in_words_with_try_again(
        self, qtbot: QtBot, ui_app: QApplication, make_worker: Callable[..., SyncWorker], client: ScriptedClient
    ) -> None:
        worker = make_worker()
        dialog = FirstSyncDialog(worker)
        qtbot.addWidget(dialog)
        client.failure = ServerUnreachable(detail="refused")
        dialog.start()
        qtbot.waitUntil(dialog.retry_button.isVisible)
        assert dialog.error.text().startswith("No connection to the server.")
        client.failure = None
        with qtbot.waitSignal(dialog.finished_ok, timeout=5000):
            dialog.retry_button.click()
