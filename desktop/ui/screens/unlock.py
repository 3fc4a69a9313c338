"""`UnlockDialog`: a known user unlocks IntegMed offline with their PIN or passphrase.

`AuthService.unlock` runs through `Runner.run_op` (the scrypt check is memory-hard and takes tens of
milliseconds: never on the GUI thread). A wrong PIN says how many tries are left; after too many, unlock is
locked until a time that the dialog shows, and the Unlock button stays off until then. "Sign in online
instead" (Alt+O) leaves for the online sign-in (HPR OTP), which also works while locked.

Keyboard: Up/Down choose the user in the list, Tab goes to the PIN, Enter unlocks, Alt+O signs in online.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.errors import KnownError
from desktop.services.auth import WrongPin
from desktop.ui.error_dialogs import present_error
from desktop.ui.runner import PresentError, Runner
from desktop.ui.signals import emit
from desktop.ui.widgets.field_error import FieldError

_ROLE_WORDS = {"doctor": "Doctor", "clinic_admin": "Clinic admin", "nurse": "Nurse", "front_desk": "Front desk"}


def locked_text(message: str, until: datetime) -> str:
    """The lockout message with the local time unlock opens again."""
    return f"{message} Unlock opens again at {until.astimezone():%H:%M}. You can also sign in online now."


class UnlockDialog(QDialog):
    """Pick a user, type the PIN.

    Args:
        runner: the unlock check goes through `run_op`.
        auth: the auth service (``unlock``).
        users: known users with a PIN (`LocalUser`s).
        clinic_name: shown under the title.
        now: the current time (tests pass a fixed one).
        error_presenter: shows unexpected failures.
        parent: Qt parent.
    """

    unlocked = Signal(object)  # LocalUser
    online_sign_in_requested = Signal()

    def __init__(
        self,
        runner: Runner,
        auth: Any,
        users: Sequence[Any],
        *,
        clinic_name: str = "",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        error_presenter: PresentError = present_error,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unlock IntegMed")
        self._runner = runner
        self._auth = auth
        self._now = now
        self._present_error = error_presenter
        self._busy = False
        self._users = {user.user_id: user for user in users}
        self.title = QLabel("Unlock IntegMed", self)
        self.title.setProperty("role", "heading")
        self.clinic = QLabel(clinic_name, self)
        self.clinic.setProperty("role", "hint")
        self.clinic.setVisible(bool(clinic_name))
        who = QLabel("&Who is working?", self)
        self.user_list = QListWidget(self)
        self.user_list.setAccessibleName("Who is working")
        for user in users:
            item = QListWidgetItem(f"{user.name}  ·  {_ROLE_WORDS.get(user.role, user.role)}")
            item.setData(Qt.ItemDataRole.UserRole, user.user_id)
            self.user_list.addItem(item)
        self.user_list.setMaximumHeight(max(60, min(6, len(users)) * 30 + 8))
        who.setBuddy(self.user_list)
        pin_label = QLabel("&PIN or passphrase", self)
        self.pin_edit = QLineEdit(self)
        self.pin_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin_edit.setAccessibleName("PIN or passphrase")
        pin_label.setBuddy(self.pin_edit)
        self.pin_error = FieldError(self.pin_edit, self)
        self.unlock_button = QPushButton("Unlock (Enter)", self)
        self.unlock_button.setDefault(True)
        self.online_button = QPushButton("Sign in &online instead", self)
        self.online_button.setAutoDefault(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.online_button)
        buttons.addStretch(1)
        buttons.addWidget(self.unlock_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 24, 28, 24)
        layout.addWidget(self.title)
        layout.addWidget(self.clinic)
        layout.addSpacing(8)
        layout.addWidget(who)
        layout.addWidget(self.user_list)
        layout.addSpacing(6)
        layout.addWidget(pin_label)
        layout.addWidget(self.pin_edit)
        layout.addWidget(self.pin_error)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self._unlock_timer = QTimer(self)
        self._unlock_timer.setSingleShot(True)
        self.setMinimumWidth(480)
        self._connect_signals()
        if users:
            self.user_list.setCurrentRow(0)
        self.pin_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def _connect_signals(self) -> None:
        self.unlock_button.clicked.connect(self.on_unlock_button_clicked)
        self.online_button.clicked.connect(self.on_online_button_clicked)
        self.user_list.currentRowChanged.connect(self.on_user_list_current_row_changed)
        self.pin_edit.textEdited.connect(self.on_pin_edit_text_edited)
        self._unlock_timer.timeout.connect(self.on_unlock_timer_timeout)

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def selected_user_id(self) -> uuid.UUID | None:
        """The chosen user's id."""
        item = self.user_list.currentItem()
        user_id = None if item is None else item.data(Qt.ItemDataRole.UserRole)
        return user_id if isinstance(user_id, uuid.UUID) else None

    @property
    def message(self) -> str:
        """The problem shown under the PIN ("" when none)."""
        return self.pin_error.text()

    @property
    def is_locked(self) -> bool:
        """Unlock is refused until a time (the button is off)."""
        return not self.unlock_button.isEnabled() and not self._busy

    # -- slots ---------------------------------------------------------------------------------------------

    @Slot(int)
    def on_user_list_current_row_changed(self, _row: int) -> None:
        self.pin_error.clear_message()
        self.unlock_button.setEnabled(True)
        self._unlock_timer.stop()
        user = self._users.get(self.selected_user_id) if self.selected_user_id else None
        until = getattr(user, "locked_until", None)
        if until is not None:
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
            if until > self._now():
                self._show_locked("Too many wrong PINs were entered.", until)

    @Slot(str)
    def on_pin_edit_text_edited(self, _text: str) -> None:
        if not self.is_locked:
            self.pin_error.clear_message()

    @Slot()
    def on_unlock_button_clicked(self) -> None:
        self.try_unlock()

    @Slot()
    def on_online_button_clicked(self) -> None:
        if not self._busy:
            emit(self.online_sign_in_requested)

    @Slot()
    def on_unlock_timer_timeout(self) -> None:
        self.unlock_button.setEnabled(True)
        self.pin_error.clear_message()
        self.pin_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def try_unlock(self) -> None:
        """Check the PIN off the GUI thread."""
        user_id, pin = self.selected_user_id, self.pin_edit.text()
        if self._busy or user_id is None or not self.unlock_button.isEnabled():
            return
        if not pin:
            self.pin_error.show_message("Type your PIN or passphrase.")
            return
        self._busy = True
        self.unlock_button.setEnabled(False)
        self.unlock_button.setText("Checking…")
        auth = self._auth
        self._runner.run_op(self, lambda: auth.unlock(user_id, pin), self._on_unlocked, self._on_unlock_failed)

    def _on_unlocked(self, user: Any) -> None:
        self._done_checking()
        emit(self.unlocked, user)
        self.accept()

    def _on_unlock_failed(self, exc: BaseException) -> None:
        self._done_checking()
        self.pin_edit.clear()
        self.pin_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        until = getattr(exc, "locked_until", None)
        if isinstance(exc, KnownError) and until is not None:
            self._show_locked(exc.message, until)
        elif isinstance(exc, WrongPin):
            self.pin_error.show_message(exc.message)
        else:
            self._present_error(self, exc)

    def _done_checking(self) -> None:
        self._busy = False
        self.unlock_button.setEnabled(True)
        self.unlock_button.setText("Unlock (Enter)")

    def _show_locked(self, message: str, until: datetime) -> None:
        self.pin_error.show_message(locked_text(message, until))
        self.unlock_button.setEnabled(False)
        wait_ms = int(max(0.0, (until - self._now()).total_seconds()) * 1000) + 500
        self._unlock_timer.start(min(wait_ms, 2**31 - 1))

    # -- keyboard -----------------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            event.accept()  # Esc must not quit the app by accident (closing the window quits)
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            focused = self.focusWidget()
            if isinstance(focused, QPushButton) and focused is not self.unlock_button:
                focused.click()
            else:
                self.try_unlock()
            event.accept()
            return
        super().keyPressEvent(event)
