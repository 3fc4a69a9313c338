"""`FirstSyncDialog`: the first sync of a newly enrolled PC, as its own step with a bar, counts and time left.

The dialog is the `Progress` of that round (`SyncWorker.sync_now(progress=dialog)`): the sync client tells it
the total (`set_total`, from the server's ``X-IntegMed-Remaining`` on the first page), each applied page
(`advance`) and what it is doing (`set_status`). Those calls come from a worker thread: they only update a
locked snapshot and post one queued repaint at a time. The time left is estimated from the rate so far.

The round first sends changes made on this PC before it was enrolled (steps without a total), then receives
the clinic's records; the bar counts the records, so a total resets the count.

Cancel (Esc) stops between pages: what was received is kept, and the next sync goes on from there. If the
round fails, the dialog says why in words and offers "Try again" (Enter) or "Continue without it" (Esc).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from desktop.errors import Cancelled
from desktop.ui.bridges.sync_worker import SyncWorker
from desktop.ui.progress import estimate_remaining_s, format_remaining
from desktop.ui.signals import emit
from desktop.ui.sync_status import error_words

INTRO = (
    "This computer is now linked to {clinic}. IntegMed is copying the clinic's patient records to it, "
    "so that you can work without internet. This happens once; later syncs only send what changed."
)


class FirstSyncDialog(QDialog):
    """Modal progress of the first sync; a `desktop.progress.Progress` for any thread.

    Args:
        worker: runs the round.
        clinic_name: shown in the introduction.
        clock: monotonic seconds (tests pass a fake one for the time-left text).
        parent: the main window.
    """

    finished_ok = Signal(object)  # SyncReport
    _changed = Signal()

    def __init__(
        self,
        worker: SyncWorker,
        *,
        clinic_name: str = "",
        clock: Callable[[], float] = time.monotonic,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("First sync")
        self.setModal(True)
        self._worker = worker
        self._clock = clock
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._total = 0
        self._done = 0
        self._status = "Connecting to the server…"
        self._started_at: float | None = None
        self._queued = False
        self._running = False
        self._failed = False
        self.heading = QLabel("Getting your clinic's records", self)
        self.heading.setProperty("role", "heading")
        self.intro = QLabel(INTRO.format(clinic=clinic_name or "your clinic"), self)
        self.intro.setWordWrap(True)
        self.status = QLabel(self._status, self)
        self.status.setAccessibleName("What is happening")
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)
        self.bar.setAccessibleName("First sync progress")
        self.counts = QLabel("", self)
        self.counts.setAccessibleName("Records received")
        self.eta = QLabel("", self)
        self.eta.setProperty("role", "hint")
        self.eta.setAccessibleName("Time left")
        self.error = QLabel("", self)
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Why the first sync stopped")
        self.error.hide()
        self.retry_button = QPushButton("Try again (Enter)", self)
        self.retry_button.setAutoDefault(True)
        self.retry_button.hide()
        self.cancel_button = QPushButton("Cancel (Esc)", self)
        self.cancel_button.setAutoDefault(True)
        counts_row = QHBoxLayout()
        counts_row.addWidget(self.counts)
        counts_row.addStretch(1)
        counts_row.addWidget(self.eta)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.addWidget(self.heading)
        layout.addWidget(self.intro)
        layout.addSpacing(10)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addLayout(counts_row)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self.setMinimumWidth(560)
        self._connect_signals()

    def _connect_signals(self) -> None:
        self._changed.connect(self._on_changed, Qt.ConnectionType.QueuedConnection)
        self.cancel_button.clicked.connect(self.on_cancel_button_clicked)
        self.retry_button.clicked.connect(self.on_retry_button_clicked)
        self._worker.sync_finished.connect(self.on_worker_sync_finished)
        self._worker.sync_failed.connect(self.on_worker_sync_failed)

    # -- starting ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Show the dialog and start the round."""
        self._reset()
        self.open()
        self.cancel_button.setFocus(Qt.FocusReason.OtherFocusReason)
        self._running = True
        if not self._worker.sync_now(progress=self, user_started=True):
            # A round was already under way (it has no progress for us): the queued one reports here.
            self._status = "Waiting for the sync under way to finish…"
            self._on_changed()

    def _reset(self) -> None:
        with self._lock:
            self._total = self._done = 0
            self._started_at = None
            self._status = "Connecting to the server…"
        self._cancel.clear()
        self._failed = False
        self.error.hide()
        self.retry_button.hide()
        self.cancel_button.setText("Cancel (Esc)")
        self.cancel_button.setEnabled(True)
        self.bar.setRange(0, 0)
        self._on_changed()

    # -- Progress (any thread) -------------------------------------------------------------------------------

    def set_total(self, total: int) -> None:
        with self._lock:
            self._total = max(0, total)
            self._done = 0  # the total counts records to receive; what was sent before is not part of it
            self._started_at = self._clock()
        self._queue()

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self._done += steps
        self._queue()

    def set_status(self, text: str) -> None:
        with self._lock:
            self._status = text
        self._queue()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _queue(self) -> None:
        with self._lock:
            if self._queued:
                return
            self._queued = True
        emit(self._changed)

    # -- GUI thread ------------------------------------------------------------------------------------------

    @property
    def progress_text(self) -> str:
        """ "1,200 of 5,000 records" (or "" before the total is known)."""
        return self.counts.text()

    @property
    def eta_text(self) -> str:
        """Time left in words ("" until there is a rate)."""
        return self.eta.text()

    @Slot()
    def _on_changed(self) -> None:
        with self._lock:
            self._queued = False
            total, done, status, started = self._total, self._done, self._status, self._started_at
        if self._cancel.is_set() or self._failed:
            return
        self.status.setText(status)
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            self.counts.setText(f"{min(done, total):,} of {total:,} records")
            elapsed = self._clock() - started if started is not None else 0.0
            self.eta.setText(format_remaining(estimate_remaining_s(done, total, elapsed)))
        else:
            self.bar.setRange(0, 0)

    @Slot(object, bool)
    def on_worker_sync_finished(self, report: object, _user_started: bool) -> None:
        if not self._running:
            return
        self._running = False
        emit(self.finished_ok, report)
        self.accept()

    @Slot(object, bool)
    def on_worker_sync_failed(self, exc: BaseException, _user_started: bool) -> None:
        if not self._running:
            return
        self._running = False
        if isinstance(exc, Cancelled) or self._cancel.is_set():
            self.reject()
            return
        self._failed = True
        short, full = error_words(exc)
        self.status.setText("The first sync stopped.")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.error.setText(f"{short}\n{full}" if full and full != short else short)
        self.error.show()
        self.cancel_button.setText("Continue without it (Esc)")
        self.retry_button.show()
        self.retry_button.setFocus(Qt.FocusReason.OtherFocusReason)

    @Slot()
    def on_cancel_button_clicked(self) -> None:
        if self._running:
            self._cancel.set()
            self.status.setText("Cancelling… (what was received is kept)")
            self.cancel_button.setEnabled(False)
        else:
            self.reject()

    @Slot()
    def on_retry_button_clicked(self) -> None:
        if not self._running:
            self.start()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.on_cancel_button_clicked()
            event.accept()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._running:
            self.on_cancel_button_clicked()
            event.ignore()
            return
        super().closeEvent(event)
