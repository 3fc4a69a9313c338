"""Progress: ETA arithmetic, the dialog fed from a worker thread, cancelling, and the recording fake."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from PySide6.QtWidgets import QApplication, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from desktop.errors import Cancelled
from desktop.ui.progress import (
    DialogProgress,
    Progress,
    RecordingProgress,
    estimate_remaining_s,
    format_remaining,
)
from desktop.ui.runner import Runner


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def download_readings(progress: Progress, count: int) -> int:
    """A long task in the house shape: reports, and stops between steps when cancelled."""
    progress.set_total(count)
    progress.set_status(f"Downloading {count} readings")
    for _ in range(count):
        if progress.cancelled:
            raise Cancelled()
        progress.advance()
    return count


@pytest.fixture
def window(qtbot: QtBot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


class TestEta:
    @pytest.mark.parametrize(
        ("done", "total", "elapsed_s", "expected"),
        [
            (25, 100, 10.0, 30.0),  # 2.5 steps/s, 75 to go
            (1, 3, 60.0, 120.0),
            (100, 100, 42.0, 0.0),
            (120, 100, 42.0, 0.0),  # more than announced: done
            (0, 100, 10.0, None),  # no rate yet
            (10, 0, 10.0, None),  # total unknown
            (10, 100, 0.0, None),
        ],
    )
    def test_remaining_seconds_follow_the_average_rate(
        self, done: int, total: int, elapsed_s: float, expected: float | None
    ) -> None:
        assert estimate_remaining_s(done, total, elapsed_s) == expected

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (None, ""),
            (0.0, "less than a minute left"),
            (59.9, "less than a minute left"),
            (60.0, "about 1 min left"),
            (61.0, "about 2 min left"),
            (3600.0, "about 1 h left"),
            (3900.0, "about 1 h 5 min left"),
        ],
    )
    def test_remaining_text(self, seconds: float | None, text: str) -> None:
        assert format_remaining(seconds) == text


class TestDialogProgress:
    def test_worker_updates_reach_the_dialog_with_an_eta(
        self, qtbot: QtBot, window: QWidget, worker: ThreadPoolExecutor
    ) -> None:
        clock = FakeClock()
        progress = DialogProgress(window, "Glucose meter", clock=clock)
        qtbot.addWidget(progress.dialog)
        assert isinstance(progress, Progress)

        def first_half() -> None:
            progress.set_total(200)
            progress.set_status("Downloading readings")
            clock.now += 60.0
            for _ in range(20):
                progress.advance()

        worker.submit(first_half).result()
        qtbot.waitUntil(lambda: progress.dialog.value() == 20)
        assert progress.dialog.maximum() == 200
        # 20 steps in 60 s → 180 steps to go at 3 s each = 9 minutes
        assert progress.dialog.labelText() == "Downloading readings\nabout 9 min left"
        progress.finish()

    def test_unknown_total_shows_a_busy_bar(self, qtbot: QtBot, window: QWidget) -> None:
        progress = DialogProgress(window, "Sync", clock=FakeClock())
        qtbot.addWidget(progress.dialog)
        progress.set_status("Contacting the server")
        qtbot.waitUntil(lambda: progress.dialog.labelText() == "Contacting the server")
        assert (progress.dialog.minimum(), progress.dialog.maximum()) == (0, 0)
        progress.finish()

    def test_cancel_button_stops_the_task_and_nobody_sees_an_error(
        self, qtbot: QtBot, qapp: QApplication, window: QWidget
    ) -> None:
        shown: list[BaseException] = []
        progress = DialogProgress(window, "Sync", clock=FakeClock(), min_duration_ms=0)
        qtbot.addWidget(progress.dialog)
        progress.dialog.show()
        cancel_button = progress.dialog.findChild(QPushButton)
        assert cancel_button is not None
        cancel_button.click()
        assert progress.cancelled

        with ThreadPoolExecutor(max_workers=1) as writer:
            runner = Runner(writer, error_presenter=lambda _p, exc: shown.append(exc))
            outcome: list[str] = []
            runner.run_network(
                window,
                lambda: download_readings(progress, 1000),
                on_success=lambda _n: outcome.append("finished"),
                on_cancelled=lambda: outcome.append("cancelled"),
            )
            qtbot.waitUntil(lambda: outcome == ["cancelled"])
            runner.shutdown()
        assert shown == []

    def test_cancel_from_code_also_cancels(self, qtbot: QtBot, window: QWidget) -> None:
        progress = DialogProgress(window, "Reindex", clock=FakeClock())
        qtbot.addWidget(progress.dialog)
        assert not progress.cancelled
        progress.cancel()
        assert progress.cancelled
        assert progress.dialog.labelText() == "Cancelling…"

    def test_many_advances_coalesce_into_few_updates(
        self, qtbot: QtBot, window: QWidget, worker: ThreadPoolExecutor
    ) -> None:
        progress = DialogProgress(window, "Import", clock=FakeClock())
        qtbot.addWidget(progress.dialog)
        worker.submit(download_readings, progress, 5000).result()
        qtbot.waitUntil(lambda: progress.dialog.value() == 5000)
        progress.finish()


class TestRecordingProgress:
    def test_records_calls_in_order(self) -> None:
        progress = RecordingProgress()
        assert isinstance(progress, Progress)
        assert download_readings(progress, 3) == 3
        assert progress.events == [
            ("total", 3),
            ("status", "Downloading 3 readings"),
            ("advance", 1),
            ("advance", 1),
            ("advance", 1),
        ]
        assert (progress.total, progress.done) == (3, 3)

    def test_plays_a_user_who_cancels_midway(self) -> None:
        progress = RecordingProgress(cancel_after=4)
        with pytest.raises(Cancelled):
            download_readings(progress, 10)
        assert progress.done == 4

    def test_cancel_method(self) -> None:
        progress = RecordingProgress()
        progress.cancel()
        with pytest.raises(Cancelled):
            download_readings(progress, 10)
        assert progress.done == 0
