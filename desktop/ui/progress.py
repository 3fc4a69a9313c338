"""Progress of long, cancellable work: the `Progress` protocol, a dialog-backed one, and a recording one.

Long work (first sync, the glucose meter's RACP download, a reindex) is a plain function that takes a
`Progress` (STYLE §2.5; Orange3's `TaskState`, qutebrowser's `HistoryProgress`). It reports with
`set_total`, `advance` and `set_status`, and checks `cancelled` between steps, raising
`desktop.errors.Cancelled` when it is set. The UI passes a `DialogProgress`, the CLI a console one, and tests
a `RecordingProgress`.

The protocol is structural: code that may not import Qt (services, sync) can accept any object with these
four members without importing this module.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget

from desktop.ui.signals import emit


@runtime_checkable
class Progress(Protocol):
    """What long work reports to, from any thread."""

    def set_total(self, total: int) -> None:
        """The number of steps, once known (0: unknown)."""

    def advance(self, steps: int = 1) -> None:
        """`steps` more steps are done."""

    def set_status(self, text: str) -> None:
        """A short sentence on what is happening now, e.g. "Sending 40 changes"."""

    @property
    def cancelled(self) -> bool:
        """True once the user asked to stop; the work then raises `desktop.errors.Cancelled`."""


def estimate_remaining_s(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the average rate so far; None until there is a rate to go by.

    >>> estimate_remaining_s(done=25, total=100, elapsed_s=10.0)
    30.0
    """
    if total <= 0 or done <= 0 or elapsed_s <= 0:
        return None
    if done >= total:
        return 0.0
    return (total - done) * elapsed_s / done


def format_remaining(seconds: float | None) -> str:
    """A rough, human time-left text: "", "less than a minute left", "about 4 min left", "about 1 h 5 min left"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"


class DialogProgress(QObject):
    """A `Progress` shown in a window-modal QProgressDialog; safe to call from the worker thread.

    Worker calls only update a locked snapshot and emit a queued signal; the dialog is touched on the GUI
    thread alone. The Cancel button (or `cancel()`) sets `cancelled`. Call `finish()` on the GUI thread when
    the work has ended.

    Args:
        parent: window the dialog belongs to.
        title: window title, e.g. "First sync".
        clock: monotonic seconds; tests pass a fake one.
        min_duration_ms: the dialog appears only if the work takes longer than this.
    """

    _changed = Signal()

    def __init__(
        self,
        parent: QWidget | None,
        title: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_duration_ms: int = 500,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._lock = threading.Lock()
        self._cancel_requested = threading.Event()
        self._total = 0
        self._done = 0
        self._status = ""
        self._started_at: float | None = None
        self._update_queued = False
        self.dialog = QProgressDialog(parent)
        self.dialog.setWindowTitle(title)
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.setMinimumDuration(min_duration_ms)
        self.dialog.setRange(0, 0)
        self.dialog.canceled.connect(self.on_dialog_canceled)
        self._changed.connect(self._on_changed, Qt.ConnectionType.QueuedConnection)

    # --- Progress, any thread ---------------------------------------------------------------------------

    def set_total(self, total: int) -> None:
        with self._lock:
            self._total = max(0, total)
            if self._started_at is None:
                self._started_at = self._clock()
        self._queue_update()

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self._done += steps
            if self._started_at is None:
                self._started_at = self._clock()
        self._queue_update()

    def set_status(self, text: str) -> None:
        with self._lock:
            self._status = text
        self._queue_update()

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested.is_set()

    # --- GUI thread -------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the work to stop, as the Cancel button does (e.g. when a new task of the same kind starts)."""
        self._cancel_requested.set()
        self.dialog.setLabelText("Cancelling…")

    def finish(self) -> None:
        """Close the dialog; the work has ended."""
        self.dialog.reset()
        self.dialog.close()

    def eta_text(self) -> str:
        """Time-left text from the rate so far ("" until there is one)."""
        with self._lock:
            done, total, started_at = self._done, self._total, self._started_at
        if started_at is None:
            return ""
        return format_remaining(estimate_remaining_s(done, total, self._clock() - started_at))

    @Slot()
    def on_dialog_canceled(self) -> None:
        self._cancel_requested.set()

    def _queue_update(self) -> None:
        # Coalesce: a worker advancing 10 000 times queues one repaint at a time, not 10 000 events.
        with self._lock:
            if self._update_queued:
                return
            self._update_queued = True
        emit(self._changed)

    @Slot()
    def _on_changed(self) -> None:
        with self._lock:
            self._update_queued = False
            done, total, status = self._done, self._total, self._status
        if self.cancelled:
            return
        if total > 0:
            self.dialog.setRange(0, total)
            self.dialog.setValue(min(done, total))
        else:
            self.dialog.setRange(0, 0)
        self.dialog.setLabelText("\n".join(part for part in (status, self.eta_text()) if part))


class RecordingProgress:
    """A `Progress` for tests: records every call, and can play a user who cancels after some steps.

    Args:
        cancel_after: once this many steps are done, `cancelled` turns True.
    """

    def __init__(self, *, cancel_after: int | None = None) -> None:
        self._lock = threading.Lock()
        self._cancel_after = cancel_after
        self._cancelled = False
        self.events: list[tuple[str, int | str]] = []
        self.total = 0
        self.done = 0
        self.statuses: list[str] = []

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            self.events.append(("total", total))

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self.done += steps
            self.events.append(("advance", steps))
            if self._cancel_after is not None and self.done >= self._cancel_after:
                self._cancelled = True

    def set_status(self, text: str) -> None:
        with self._lock:
            self.statuses.append(text)
            self.events.append(("status", text))

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Play the user pressing Cancel."""
        self._cancelled = True
