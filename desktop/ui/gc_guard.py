"""Python's cycle collector runs only on the GUI thread while the app runs.

The collector normally runs in whichever thread happens to allocate when a threshold is crossed — in this
app often a worker (the store writer, the sync or Bluetooth thread). If a garbage cycle holds Qt objects
(pyqtgraph's plot items do), their C++ halves are then destroyed on that worker, which Qt forbids ("Timers
cannot be started from another thread") and which can crash PySide6. `GuiThreadCollector` turns automatic
collection off and collects on a GUI-thread timer instead, by the same generation thresholds (the approach
pyqtgraph documents for its own widgets). Reference counting still frees everything that is not a cycle at
once, on any thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot


class GuiThreadCollector(QObject):
    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect_due)
        self._timer.start(interval_ms)

    @Slot()
    def collect_due(self) -> None:
        """Collect the generations whose allocation counts passed their thresholds (as gc itself would)."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        """Hand collection back to Python (after the last window closed)."""
        self._timer.stop()
        gc.enable()
