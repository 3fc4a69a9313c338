"""`SetupWindow`: first run (and any online sign-in): server URL → mobile → OTP → offline PIN.

1. **Server**: the IntegMed server's address; checked with a cheap probe before going on.
2. **Mobile**: the doctor's HPR-registered mobile (checked with the shared rule first); the server has HPR
   send an OTP (`AuthService.start_sign_in`).
3. **OTP**: `AuthService.finish_sign_in` checks it; the first sign-in on this PC enrols it for the doctor's
   clinic (device id and token: the token goes to the OS keyring).
4. **PIN**: the offline PIN or passphrase for later starts (`AuthService.set_pin`: memory-hard hash on the
   writer thread). A user who already has one may keep it.

Every step works from the keyboard alone: the field has focus, Enter goes on, Esc goes back a step. A problem
shows in red under the field (and is the field's accessible description). Network calls go through
`Runner.run_network`, the PIN through `run_op`; the window stays responsive meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.errors import KnownError
from desktop.services.auth import AuthService
from desktop.ui.error_dialogs import present_error
from desktop.ui.runner import PresentError, Runner
from desktop.ui.signals import emit
from desktop.ui.widgets.field_error import FieldError
from shared.errors import DomainError, RuleViolation
from shared.ids import normalize_mobile

SERVER, MOBILE, OTP, PIN = range(4)
STEP_TITLES = ("Connect to your clinic's server", "Sign in", "Enter the one-time code", "Choose an offline PIN")
COLUMN_WIDTH = 620
UNREACHABLE_TEXT = "No IntegMed server answered at this address. Check it, and the internet connection."


@dataclass
class _Step:
    page: QWidget
    field: QLineEdit
    error: FieldError
    info: QLabel
    primary: QPushButton
    back: QPushButton | None


def clean_server_url(text: str) -> str | None:
    """The URL without spaces and trailing slash, or None when it does not start with http:// or https://."""
    url = text.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        return None
    return url


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


class SetupWindow(QWidget):
    """The four-step sign-in window; emits `signed_in(LocalUser)` at the end.

    Args:
        runner: network calls and the PIN write go through it.
        auth: the auth service.
        check_server: True when an IntegMed server answers at the URL (called on a worker thread).
        server_url: prefilled address (from ``--server``, the settings or the enrolment).
        reason: a sentence shown on top (e.g. why the PC must sign in again).
        pc_name: the name this PC is enrolled under (default: the computer's name).
        error_presenter: shows unexpected failures.
        parent: Qt parent.
    """

    signed_in = Signal(object)  # LocalUser
    step_changed = Signal(int)

    def __init__(
        self,
        runner: Runner,
        auth: AuthService,
        *,
        check_server: Callable[[str], bool],
        server_url: str | None = None,
        reason: str = "",
        pc_name: str | None = None,
        error_presenter: PresentError = present_error,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("IntegMed: set up this computer")
        self._runner = runner
        self._auth = auth
        self._check_server = check_server
        self._pc_name = pc_name
        self._present_error = error_presenter
        self._server_url = clean_server_url(server_url or "")
        self._txn_id = ""
        self._user: object = None
        self._busy = False
        self.title = QLabel("Welcome to IntegMed", self)
        self.title.setProperty("role", "heading")
        self.reason = QLabel(reason, self)
        self.reason.setWordWrap(True)
        self.reason.setVisible(bool(reason))
        self.step_label = QLabel(self)
        self.step_label.setProperty("role", "hint")
        self.stack = QStackedWidget(self)
        self.steps = [
            self._make_step(
                "Server address",
                "https://sync.example.org",
                "Continue",
                "Type the address of your clinic's IntegMed server (your IT person has it), then press Enter.",
            ),
            self._make_step(
                "Doctor's mobile number",
                "10 digits, e.g. 98100 00001",
                "Send code",
                "A doctor or clinic admin signs in with the mobile registered with HPR (Healthcare "
                "Professionals Registry). A one-time code will be sent to it.",
                back=True,
            ),
            self._make_step("One-time code (OTP)", "6 digits", "Sign in", "", back=True, secondary="Send a &new code"),
            self._make_step(
                "PIN or passphrase",
                "at least 6 digits, or 8 characters",
                "Finish",
                "Later, you unlock IntegMed on this computer with this PIN, even without internet. "
                "Use at least 6 digits that do not count up or down, or a passphrase of 8 characters.",
                secondary="&Keep my current PIN",
            ),
        ]
        self.pin_repeat = QLineEdit(self.steps[PIN].page)
        self.pin_repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin_repeat.setAccessibleName("PIN again")
        self.pin_repeat.setPlaceholderText("type it again")
        self.pin_repeat_error = FieldError(self.pin_repeat, self.steps[PIN].page)
        self._add_pin_repeat()
        self.steps[PIN].field.setEchoMode(QLineEdit.EchoMode.Password)
        self.steps[SERVER].field.setText(self._server_url or "")
        # One readable column, centred, however large the window is.
        column = QWidget(self)
        column.setMaximumWidth(COLUMN_WIDTH)
        inner = QVBoxLayout(column)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.title)
        inner.addWidget(self.reason)
        inner.addWidget(self.step_label)
        inner.addSpacing(8)
        inner.addWidget(self.stack, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(40, 48, 40, 40)
        layout.addStretch(1)
        layout.addWidget(column, 100)
        layout.addStretch(1)
        self._connect_signals()
        self.resize(640, 420)
        self.go_to(MOBILE if self._server_url and reason else SERVER)

    def _make_step(
        self,
        label_text: str,
        placeholder: str,
        primary_text: str,
        info_text: str,
        *,
        back: bool = False,
        secondary: str | None = None,
    ) -> _Step:
        page = QWidget(self.stack)
        info = QLabel(info_text, page)
        info.setWordWrap(True)
        field = QLineEdit(page)
        field.setPlaceholderText(placeholder)
        field.setAccessibleName(label_text)
        label = QLabel(label_text, page)
        label.setBuddy(field)
        error = FieldError(field, page)
        primary = QPushButton(f"{primary_text} (Enter)", page)
        primary.setAutoDefault(True)
        back_button = QPushButton("Back (Esc)", page) if back else None
        buttons = QHBoxLayout()
        if back_button is not None:
            back_button.setAutoDefault(True)
            buttons.addWidget(back_button)
        if secondary is not None:
            extra = QPushButton(secondary, page)
            extra.setAutoDefault(True)
            extra.setObjectName("secondary")
            buttons.addWidget(extra)
        buttons.addStretch(1)
        buttons.addWidget(primary)
        box = QVBoxLayout(page)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(info)
        box.addSpacing(6)
        box.addWidget(label)
        box.addWidget(field)
        box.addWidget(error)
        box.addSpacing(14)
        box.addLayout(buttons)
        box.addStretch(1)
        self.stack.addWidget(page)
        return _Step(page, field, error, info, primary, back_button)

    def _add_pin_repeat(self) -> None:
        page = self.steps[PIN].page
        box = page.layout()
        assert isinstance(box, QVBoxLayout)
        label = QLabel("Same PIN again", page)
        label.setBuddy(self.pin_repeat)
        at = box.indexOf(self.steps[PIN].error) + 1
        box.insertWidget(at, label)
        box.insertWidget(at + 1, self.pin_repeat)
        box.insertWidget(at + 2, self.pin_repeat_error)
        QWidget.setTabOrder(self.steps[PIN].field, self.pin_repeat)
        QWidget.setTabOrder(self.pin_repeat, self.steps[PIN].primary)

    def _connect_signals(self) -> None:
        for index, step in enumerate(self.steps):
            step.primary.clicked.connect(lambda _checked=False, index=index: self.advance(index))
            if step.back is not None:
                step.back.clicked.connect(self.on_back_clicked)
            step.field.textEdited.connect(lambda _text, step=step: step.error.clear_message())
        self.pin_repeat.textEdited.connect(lambda _text: self.pin_repeat_error.clear_message())
        self.secondary(OTP).clicked.connect(self.on_new_code_clicked)
        self.secondary(PIN).clicked.connect(self.on_keep_pin_clicked)

    # -- navigation ------------------------------------------------------------------------------------------

    @property
    def current_step(self) -> int:
        """SERVER, MOBILE, OTP or PIN."""
        return self.stack.currentIndex()

    @property
    def is_busy(self) -> bool:
        """A network call or the PIN write is under way."""
        return self._busy

    def secondary(self, step: int) -> QPushButton:
        """The step's extra button ("Send a new code", "Keep my current PIN")."""
        button = self.steps[step].page.findChild(QPushButton, "secondary")
        assert button is not None
        return button

    def go_to(self, step: int) -> None:
        """Show a step with the cursor in its field."""
        self.stack.setCurrentIndex(step)
        self.step_label.setText(self._step_text(step))
        self.secondary(PIN).setVisible(bool(getattr(self._user, "has_pin", False)))
        field = self.steps[step].field
        field.setFocus(Qt.FocusReason.OtherFocusReason)
        field.selectAll()
        emit(self.step_changed, step)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.advance(self.current_step)
        elif event.key() == Qt.Key.Key_Escape:
            self.on_back_clicked()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    @Slot()
    def on_back_clicked(self) -> None:
        step = self.current_step
        if self._busy or step in (SERVER, PIN):
            return  # after the OTP the PC is enrolled: there is no going back, only on to the PIN
        self.go_to(step - 1)

    def advance(self, step: int) -> None:
        """Do the step's action (Enter or its main button)."""
        if self._busy or step != self.current_step:
            return
        (self._submit_server, self._submit_mobile, self._submit_otp, self._submit_pin)[step]()

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        step = self.steps[self.current_step]
        step.primary.setEnabled(not busy)
        step.field.setReadOnly(busy)
        if busy:
            step.error.clear_message()
        self.step_label.setText(text or self._step_text(self.current_step))

    def _step_text(self, step: int) -> str:
        where = f"  ·  server {self._server_url}" if step > SERVER and self._server_url else ""
        return f"Step {step + 1} of 4: {STEP_TITLES[step]}{where}"

    def _fail(self, step: int, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, RuleViolation) and exc.problems:
            text = " ".join(_sentence(problem.message) for problem in exc.problems)
        elif isinstance(exc, KnownError | DomainError):
            text = exc.message
        else:
            self._present_error(self, exc)
            return
        self.steps[step].error.show_message(text)
        self.steps[step].field.setFocus(Qt.FocusReason.OtherFocusReason)
        self.steps[step].field.selectAll()

    # -- steps ---------------------------------------------------------------------------------------------

    def _submit_server(self) -> None:
        url = clean_server_url(self.steps[SERVER].field.text())
        if url is None:
            self.steps[SERVER].error.show_message("The address must start with https:// (or http:// on a LAN).")
            return
        self._set_busy(True, "Checking the server…")
        check = self._check_server
        self._runner.run_network(
            self, lambda: check(url), lambda ok: self._on_server_checked(url, ok), lambda exc: self._fail(SERVER, exc)
        )

    def _on_server_checked(self, url: str, answered: bool) -> None:
        self._set_busy(False)
        if not answered:
            self.steps[SERVER].error.show_message(UNREACHABLE_TEXT)
            return
        self._server_url = url
        self.go_to(MOBILE)

    def _submit_mobile(self) -> None:
        try:
            mobile = normalize_mobile(self.steps[MOBILE].field.text())
        except RuleViolation as exc:
            self._fail(MOBILE, exc)
            return
        url, auth = self._server_url or "", self._auth
        self._set_busy(True, "Asking for a one-time code…")
        self._runner.run_network(
            self, lambda: auth.start_sign_in(url, mobile), self._on_code_sent, lambda exc: self._fail(MOBILE, exc)
        )

    def _on_code_sent(self, answer: tuple[str, str]) -> None:
        self._set_busy(False)
        self._txn_id, message = answer
        self.steps[OTP].info.setText(f"{message}\nType the code, then press Enter.")
        self.steps[OTP].field.clear()
        self.go_to(OTP)

    @Slot()
    def on_new_code_clicked(self) -> None:
        if not self._busy:
            self.go_to(MOBILE)
            self._submit_mobile()

    def _submit_otp(self) -> None:
        otp = self.steps[OTP].field.text().strip()
        if not (otp.isascii() and otp.isdigit() and 4 <= len(otp) <= 8):
            self.steps[OTP].error.show_message("Type the digits of the code sent to the mobile.")
            return
        url, txn_id, auth, pc_name = self._server_url or "", self._txn_id, self._auth, self._pc_name
        self._set_busy(True, "Signing in…")
        self._runner.run_network(
            self,
            lambda: auth.finish_sign_in(url, txn_id, otp, pc_name=pc_name),
            self._on_signed_in,
            lambda exc: self._fail(OTP, exc),
        )

    def _on_signed_in(self, user: object) -> None:
        self._set_busy(False)
        self._user = user
        self.title.setText(f"Signed in as {getattr(user, 'name', '')}")
        self.go_to(PIN)

    def _submit_pin(self) -> None:
        pin, again = self.steps[PIN].field.text(), self.pin_repeat.text()
        self.pin_repeat_error.clear_message()
        if not pin:
            self.steps[PIN].error.show_message("Choose a PIN of at least 6 digits, or a passphrase.")
            return
        if pin != again:
            self.pin_repeat_error.show_message("The two entries differ. Type the same PIN twice.")
            self.pin_repeat.setFocus(Qt.FocusReason.OtherFocusReason)
            self.pin_repeat.selectAll()
            return
        user, auth = self._user, self._auth
        user_id = getattr(user, "user_id")  # noqa: B009 - LocalUser, duck-typed (ui does not import store)
        self._set_busy(True, "Saving the PIN…")
        self._runner.run_op(
            self, lambda: auth.set_pin(user_id, pin), lambda _r: self._finish(), lambda exc: self._fail(PIN, exc)
        )

    @Slot()
    def on_keep_pin_clicked(self) -> None:
        if not self._busy:
            self._finish()

    def _finish(self) -> None:
        self._set_busy(False)
        emit(self.signed_in, self._user)
