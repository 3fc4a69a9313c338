"""The cycle collector runs on the GUI thread only, on a timer, by gc's own generation thresholds."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.ui.gc_guard import GuiThreadCollector


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_cycles_are_collected_by_the_gui_timer_not_by_a_worker(qtbot: QtBot, ui_app: QApplication) -> None:
    collector = GuiThreadCollector(interval_ms=20)
    try:
        assert not gc.isenabled()
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b

        kept: list[list[int]] = []

        def churn() -> None:  # a worker allocating plenty: with gc off it never collects the cycle itself
            kept.extend([i] for i in range(50_000))

        worker = threading.Thread(target=churn)
        worker.start()
        worker.join()
        assert gone() is not None  # nothing ran the collector on the worker
        qtbot.waitUntil(lambda: gone() is None, timeout=5_000)  # the GUI-thread timer did
        assert len(kept) == 50_000
    finally:
        collector.stop()
    assert gc.isenabled()
