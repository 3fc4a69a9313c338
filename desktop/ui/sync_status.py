"""`SyncStatusWidget`: the always-visible sync area of the status bar, in words a receptionist understands.

It shows: a dot and "Online" / "Offline" / "Syncing…"; "Last synced 10:42" (or the date when not today);
"3 changes waiting" / "All changes sent"; the last problem in plain words (full text in the tooltip); and a
"Sync now" button (F5 / Ctrl+Shift+S from the main window). It only displays: the `SyncWorker` signals drive
it through the ``on_*`` slots, and the button's `sync_requested` goes back to the main window.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from desktop.errors import Cancelled, KnownError, NotEnrolled, ServerUnreachable
from desktop.services.sync_status import SyncStatus
from desktop.sync.errors import AppOutdated, DeviceSignInRequired, ServerError, ServerOutdated
from desktop.ui.signals import emit
from desktop.ui.style import ERROR_COLOR, MUTED_COLOR, OK_COLOR, WARNING_COLOR

# Short sentences for the status bar; the error's full message and action go to the tooltip.
_SHORT_TEXT: tuple[tuple[type[KnownError], str], ...] = (
    (ServerUnreachable, "No connection to the server. Your work is saved on this computer."),
    (DeviceSignInRequired, "This computer must be signed in again by a doctor."),
    (NotEnrolled, "This computer is not linked to a clinic yet."),
    (AppOutdated, "Please update IntegMed to keep syncing."),
    (ServerOutdated, "The server needs an update before this computer can sync."),
    (ServerError, "The server has a problem. Sync will try again."),
)
BUG_TEXT = "Sync stopped because of an unexpected problem. It will try again."


def error_words(exc: BaseException) -> tuple[str, str]:
    """(short sentence for the status bar, longer text for its tooltip) for a failed sync round."""
    for kind, text in _SHORT_TEXT:
        if isinstance(exc, kind):
            return text, exc.user_text()
    if isinstance(exc, KnownError):
        return exc.message, exc.user_text()
    return BUG_TEXT, f"{BUG_TEXT} ({type(exc).__name__})"


def last_synced_text(when: datetime | None, now: datetime | None = None) -> str:
    """ "Last synced 10:42" today, "Last synced 3 Nov 10:42" on another day, "Not synced yet" without one."""
    if when is None:
        return "Not synced yet"
    local = when.astimezone()
    today = (now or datetime.now().astimezone()).date()
    if local.date() == today:
        return f"Last synced {local:%H:%M}"
    return f"Last synced {local.day} {local:%b %H:%M}"


def refused_signed_text(refused: Mapping[str, str]) -> tuple[str, str]:
    """(status bar sentence, tooltip) for signed prescriptions from the server that failed verification here."""
    n = len(refused)
    things, verb = ("prescriptions", "were") if n != 1 else ("prescription", "was")
    short = f"{n} signed {things} from the server failed the signature check and {verb} not saved on this computer."
    details = "; ".join(f"{rx_id}: {reason}" for rx_id, reason in sorted(refused.items()))
    return short, f"{short} Tell the clinic's IT team. {details}"


def waiting_text(pending: int) -> str:
    """ "All changes sent", "1 change waiting", "3 changes waiting"."""
    if pending == 0:
        return "All changes sent"
    return f"{pending} change{'s' if pending != 1 else ''} waiting"


def _dot(color: str) -> str:
    return f'<span style="color:{color}; font-size:14pt;">&#9679;</span>'


class SyncStatusWidget(QWidget):
    """The sync part of the status bar. Keyboard: the main window's F5 / Ctrl+Shift+S press `sync_button`."""

    sync_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Sync status")
        self.online_label = QLabel(self)
        self.online_label.setTextFormat(Qt.TextFormat.RichText)
        self.last_sync_label = QLabel("Not synced yet", self)
        self.waiting_label = QLabel("", self)
        self.error_label = QLabel("", self)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.error_label.setMinimumWidth(120)
        self.sync_button = QPushButton("Sync now (F5)", self)
        self.sync_button.setAccessibleName("Sync now")
        self.sync_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        for label, name in (
            (self.online_label, "Connection"),
            (self.last_sync_label, "Last sync"),
            (self.waiting_label, "Changes waiting"),
            (self.error_label, "Last sync problem"),
        ):
            label.setAccessibleName(name)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(14)
        layout.addWidget(self.online_label)
        layout.addWidget(self.last_sync_label)
        layout.addWidget(self.waiting_label)
        layout.addWidget(self.error_label, 1)
        layout.addWidget(self.sync_button)
        self._online: bool | None = None
        self._syncing = False
        self._pending: int | None = None
        self._error_full = ""
        self._error_short = ""
        self._show_connection()
        self.sync_button.clicked.connect(self.on_sync_button_clicked)

    # -- what the tests and the main window read --------------------------------------------------------

    @property
    def error_text(self) -> str:
        """The short problem sentence shown ("" when the last round went well)."""
        return self._error_short

    def show_note(self, text: str) -> None:
        """A short good-news line where problems go (e.g. the outcome of a sync the user started)."""
        self._error_short = ""
        self.error_label.setText(text)
        self.error_label.setToolTip(text)
        self.error_label.setAccessibleDescription(text)
        self.error_label.setStyleSheet(f"color: {OK_COLOR};")

    @property
    def pending(self) -> int | None:
        """The waiting count shown (None before the first status read)."""
        return self._pending

    # -- slots ---------------------------------------------------------------------------------------------

    @Slot()
    def on_sync_button_clicked(self) -> None:
        emit(self.sync_requested)

    @Slot(bool)
    def on_online_changed(self, online: bool) -> None:
        self._online = online
        self._show_connection()

    @Slot(bool)
    def on_sync_started(self, _user_started: bool) -> None:
        self._syncing = True
        self.sync_button.setEnabled(False)
        self._show_connection()

    @Slot(int, int, str)
    def on_sync_progress(self, done: int, total: int, _text: str) -> None:
        if total:
            self.online_label.setText(f"{_dot(OK_COLOR)} Syncing… {min(done, total)} of {total}")

    @Slot(object, bool)
    def on_sync_finished(self, report: object, _user_started: bool) -> None:
        self._end_round()
        rejected = list(getattr(report, "rejected", []) or [])
        if rejected:
            first = rejected[0]
            text = f"The server refused {len(rejected)} change{'s' if len(rejected) != 1 else ''}."
            self._set_error(text, f"{text} {getattr(first, 'message', '')}".strip(), color=WARNING_COLOR)
        else:
            self._set_error("", "")

    @Slot(object, bool)
    def on_sync_failed(self, exc: BaseException, _user_started: bool) -> None:
        self._end_round()
        if isinstance(exc, Cancelled):
            return
        short, full = error_words(exc)
        self._set_error(short, full)

    @Slot(object)
    def on_status_changed(self, status: SyncStatus) -> None:
        self._pending = status.pending
        self.last_sync_label.setText(last_synced_text(status.last_synced_at))
        self.waiting_label.setText(waiting_text(status.pending))
        self.waiting_label.setStyleSheet("" if status.pending == 0 else f"color: {WARNING_COLOR};")
        if status.last_error and not self._error_short and not self.error_label.text() and not self._syncing:
            # A problem from before this session (or from the CLI), in the words it was stored with.
            self._set_error(status.last_error, status.last_error)
        elif status.refused_signed and not self._error_short and not self._syncing:
            short, full = refused_signed_text(status.refused_signed)
            self._set_error(short, full, color=WARNING_COLOR)

    # -- drawing -------------------------------------------------------------------------------------------

    def _end_round(self) -> None:
        self._syncing = False
        self.sync_button.setEnabled(True)
        self._show_connection()

    def _set_error(self, short: str, full: str, *, color: str = ERROR_COLOR) -> None:
        self._error_full = full
        self._error_short = short
        self.error_label.setText(short)
        self.error_label.setToolTip(full)
        self.error_label.setAccessibleDescription(full)
        self.error_label.setStyleSheet(f"color: {color};")

    def _show_connection(self) -> None:
        if self._syncing:
            text = f"{_dot(OK_COLOR)} Syncing…"
        elif self._online is None:
            text = f"{_dot(MUTED_COLOR)} Checking connection…"
        elif self._online:
            text = f"{_dot(OK_COLOR)} Online"
        else:
            text = f"{_dot(ERROR_COLOR)} Offline"
        self.online_label.setText(text)
        self.online_label.setAccessibleDescription(self.connection_text)

    @property
    def connection_text(self) -> str:
        """ "Online", "Offline", "Syncing…" or "Checking connection…" (the dot's words)."""
        if self._syncing:
            return "Syncing…"
        if self._online is None:
            return "Checking connection…"
        return "Online" if self._online else "Offline"
