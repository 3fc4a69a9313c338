"""`PatientFormScreen`: register a patient or edit one, with each problem shown in red under its field.

The rules are the shared ones (`shared.records.patient`: `PatientCreate` to register, `PatientUpdate` to
edit), so the form says exactly what the server would. The values are checked on the GUI thread first (pure
pydantic, no I/O) for instant messages; the save then goes through `Runner.run_op` to `PatientService`, which
checks again and may answer `RuleViolation` (mapped to the fields the same way) or `Conflict` (a duplicate
ABHA number or address: shown above the form and at the field).

Keyboard: Tab / Shift+Tab move between fields in reading order, Alt+underlined letter jumps to a field, Enter
saves from any field, Esc cancels. In Sex, type F, M, O or U (or use the arrows).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import date

from pydantic import BaseModel, ValidationError
from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.services.patients import PatientService
from desktop.ui.error_dialogs import present_error
from desktop.ui.runner import PresentError, Runner
from desktop.ui.signals import emit
from desktop.ui.widgets.field_error import FieldError
from shared.errors import Conflict, FieldProblem, RuleViolation
from shared.records.patient import Patient, PatientCreate, PatientUpdate
from shared.records.validation import violation_from

# (field key, label with & mnemonic, record path, column span)
_LAYOUT: tuple[tuple[tuple[str, str, int], ...], ...] = (
    (("name", "&Name *", 2),),
    (("gender", "S&ex *", 1), ("year_of_birth", "&Year of birth *", 1)),
    (("mobile", "&Mobile", 1), ("date_of_birth", "&Date of birth", 1)),
    (("abha_number", "A&BHA number", 1), ("abha_address", "ABHA add&ress", 1)),
    (("address_line", "Address &line", 2),),
    (("district", "Dis&trict", 1), ("state", "St&ate", 1)),
    (("pincode", "P&IN code", 1),),
)
_ADDRESS_PARTS = {"address_line": "line", "district": "district", "state": "state", "pincode": "pincode"}
_PLACEHOLDERS = {
    "name": "as on the ABHA card, in any script",
    "year_of_birth": "e.g. 1985",
    "mobile": "10 digits, e.g. 98765 43210",
    "date_of_birth": "DD-MM-YYYY (optional)",
    "abha_number": "XX-XXXX-XXXX-XXXX",
    "abha_address": "e.g. name@abdm",
    "pincode": "6 digits",
}
_GENDERS = (("", ""), ("Female", "F"), ("Male", "M"), ("Other", "O"), ("Unknown", "U"))
_REQUIRED_TEXT = {
    "name": "Enter the patient's name.",
    "gender": "Choose the sex: F, M, O (other) or U (unknown).",
    "year_of_birth": "Enter the year of birth, like 1985.",
}
_DATE_FORMS = (
    re.compile(r"^(?P<d>\d{1,2})[-/.](?P<m>\d{1,2})[-/.](?P<y>\d{4})$"),
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
)
BANNER_FIELD = "_form"


def parse_date(text: str) -> str | None:
    """DD-MM-YYYY, DD/MM/YYYY or YYYY-MM-DD as an ISO date; None when it is not a real date."""
    for form in _DATE_FORMS:
        match = form.match(text.strip())
        if match:
            try:
                return date(int(match["y"]), int(match["m"]), int(match["d"])).isoformat()
            except ValueError:
                return None
    return None


def field_for(problem: FieldProblem) -> str:
    """The form field a problem belongs to (`BANNER_FIELD` when it is about the whole record)."""
    path = problem.field
    if path.startswith("address."):
        part = path.split(".", 1)[1]
        return {"line": "address_line"}.get(part, part)
    if path in ("", "body", "__root__") or not path:
        return "date_of_birth" if problem.code.startswith("date_of_birth") else BANNER_FIELD
    return path


def friendly_message(field: str, problem: FieldProblem) -> str:
    """The shared rule's message; pydantic's generic type messages in words a receptionist understands."""
    code = problem.code
    if code == "missing" or (code.endswith("_type") and field in _REQUIRED_TEXT):
        return _REQUIRED_TEXT.get(field, "This is needed.")
    if field == "year_of_birth" and code in ("int_parsing", "int_from_float"):
        return "Enter the year of birth as 4 digits, like 1985."
    if code.startswith(("date_parsing", "date_from_datetime")) or code == "date_type":
        return "Enter a real date as DD-MM-YYYY, like 25-11-1985."
    if code == "enum":
        return _REQUIRED_TEXT["gender"]
    if code == "string_too_long":
        return problem.message.replace("String should have", "Use")
    return problem.message if problem.message.endswith(".") else problem.message + "."


class PatientFormScreen(QWidget):
    """The registration / edit form.

    Args:
        runner: saves go through `run_op` (the writer thread).
        patients: the patient service.
        actor: who saves (the signed-in user's id), queued with the change for the audit log.
        error_presenter: shows failures that are not about the typed data.
        parent: Qt parent.
    """

    saved = Signal(object)  # Patient
    cancelled = Signal()

    def __init__(
        self,
        runner: Runner,
        patients: PatientService,
        *,
        actor: str,
        error_presenter: PresentError = present_error,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._patients = patients
        self._actor = actor
        self._present_error = error_presenter
        self._editing: Patient | None = None
        self._saving = False
        self.heading = QLabel("Register a new patient", self)
        self.heading.setProperty("role", "heading")
        self.heading.setAccessibleName("Form title")
        self.note = QLabel("Fields marked * are required. Enter saves, Esc cancels.", self)
        self.note.setProperty("role", "hint")
        self.banner = QLabel(self)
        self.banner.setProperty("role", "error")
        self.banner.setWordWrap(True)
        self.banner.setAccessibleName("Problem saving this patient")
        self.banner.setTextFormat(Qt.TextFormat.PlainText)
        self.banner.hide()
        self.fields: dict[str, QLineEdit | QComboBox] = {}
        self.errors: dict[str, FieldError] = {}
        self.save_button = QPushButton("Save (Enter)", self)
        self.cancel_button = QPushButton("Cancel (Esc)", self)
        for button in (self.save_button, self.cancel_button):
            button.setAutoDefault(True)  # Enter on a focused button presses that button
        self._build_layout()
        self._cancel_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._cancel_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._connect_signals()

    def _build_layout(self) -> None:
        grid_host = QWidget(self)
        grid = QGridLayout(grid_host)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(2)
        order: list[QWidget] = []
        for row, cells in enumerate(_LAYOUT):
            column = 0
            for key, label_text, span in cells:
                field = self._make_field(key, label_text)
                label = QLabel(label_text, grid_host)
                label.setBuddy(field)
                error = FieldError(field, grid_host)
                self.errors[key] = error
                cell = QVBoxLayout()
                cell.setSpacing(2)
                cell.addWidget(label)
                cell.addWidget(field)
                cell.addWidget(error)
                cell.addStretch(1)  # label and field stay at the top when the neighbour shows a message
                cell.addSpacing(6)
                grid.addLayout(cell, row, column, 1, span)
                column += span
                order.append(field)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(len(_LAYOUT), 1)
        scroll = QScrollArea(self)
        scroll.setWidget(grid_host)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.heading)
        layout.addWidget(self.note)
        layout.addWidget(self.banner)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        for first, second in zip(
            [*order, self.save_button], [*order[1:], self.save_button, self.cancel_button], strict=True
        ):
            QWidget.setTabOrder(first, second)

    def _make_field(self, key: str, label_text: str) -> QLineEdit | QComboBox:
        accessible = label_text.replace("&", "").rstrip(" *")
        widget: QLineEdit | QComboBox
        if key == "gender":
            combo = QComboBox(self)
            for text, code in _GENDERS:
                combo.addItem(text or "Choose…", code)
            combo.installEventFilter(self)  # F, M, O, U pick directly (no timed type-ahead)
            widget = combo
        else:
            line = QLineEdit(self)
            line.setPlaceholderText(_PLACEHOLDERS.get(key, ""))
            widget = line
        widget.setAccessibleName(accessible)
        widget.setObjectName(f"field_{key}")
        self.fields[key] = widget
        return widget

    def _connect_signals(self) -> None:
        self.save_button.clicked.connect(self.on_save_button_clicked)
        self.cancel_button.clicked.connect(self.on_cancel_button_clicked)
        self._cancel_shortcut.activated.connect(self.on_cancel_button_clicked)
        for key, field in self.fields.items():
            if isinstance(field, QLineEdit):
                field.textEdited.connect(lambda _text, key=key: self._clear_error(key))
            else:
                field.currentIndexChanged.connect(lambda _index, key=key: self._clear_error(key))

    # -- public ------------------------------------------------------------------------------------------

    @property
    def editing(self) -> Patient | None:
        """The patient being edited (None while registering)."""
        return self._editing

    @property
    def is_saving(self) -> bool:
        """A save is under way."""
        return self._saving

    def start_new(self, name: str = "") -> None:
        """Empty form for a new patient (the search text, when it looks like a name, prefills the name)."""
        self._editing = None
        self.heading.setText("Register a new patient")
        self._fill({"name": name})
        self.fields["name"].setFocus(Qt.FocusReason.OtherFocusReason)

    def start_edit(self, patient: Patient) -> None:
        """The form filled with `patient`'s values."""
        self._editing = patient
        self.heading.setText(f"Edit patient: {patient.name}")
        self._fill(_form_values(patient))
        self.fields["name"].setFocus(Qt.FocusReason.OtherFocusReason)

    def values(self) -> dict[str, str]:
        """What is typed, by form field (the sex as its code)."""
        out: dict[str, str] = {}
        for key, field in self.fields.items():
            out[key] = str(field.currentData() or "") if isinstance(field, QComboBox) else field.text().strip()
        return out

    def error_text(self, key: str) -> str:
        """The message under a field ("" when none)."""
        return self.errors[key].text() if key != BANNER_FIELD else self.banner.text()

    def shown_errors(self) -> dict[str, str]:
        """Every message shown, by form field (`BANNER_FIELD` for the one above the form)."""
        shown = {key: error.text() for key, error in self.errors.items() if error.has_message()}
        if self.banner.text():
            shown[BANNER_FIELD] = self.banner.text()
        return shown

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        combo = self.fields.get("gender")
        if watched is combo and isinstance(combo, QComboBox) and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            index = combo.findData(event.text().upper()) if event.text().strip() else -1
            if index > 0:
                combo.setCurrentIndex(index)
                return True
        return super().eventFilter(watched, event)

    # -- saving --------------------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.submit()
            event.accept()
            return
        super().keyPressEvent(event)

    @Slot()
    def on_save_button_clicked(self) -> None:
        self.submit()

    @Slot()
    def on_cancel_button_clicked(self) -> None:
        if not self._saving:
            emit(self.cancelled)

    def submit(self) -> None:
        """Check the values with the shared rules and, when they pass, save them off the GUI thread."""
        if self._saving:
            return
        self._clear_all_errors()
        data = self._record_data()
        model: type[BaseModel] = PatientUpdate if self._editing is not None else PatientCreate
        try:
            model.model_validate(data)
        except ValidationError as exc:
            self.show_problems(violation_from(exc).problems)
            return
        if self._editing is not None and not data:
            emit(self.saved, self._editing)  # nothing changed
            return
        self._set_saving(True)
        patients, actor, editing = self._patients, self._actor, self._editing
        if editing is None:
            self._runner.run_op(self, lambda: patients.register(data, actor), self._on_saved, self._on_save_failed)
        else:
            patient_id: uuid.UUID = editing.id
            self._runner.run_op(
                self, lambda: patients.update(patient_id, data, actor), self._on_saved, self._on_save_failed
            )

    def _on_saved(self, patient: Patient) -> None:
        self._set_saving(False)
        self._editing = patient if self._editing is not None else None
        emit(self.saved, patient)

    def _on_save_failed(self, exc: BaseException) -> None:
        self._set_saving(False)
        if isinstance(exc, RuleViolation):
            self.show_problems(exc.problems)
        elif isinstance(exc, Conflict):
            self._show_conflict(exc)
        else:
            self._present_error(self, exc)

    def show_problems(self, problems: list[FieldProblem]) -> None:
        """Put each problem under its field (or above the form) and move the cursor to the first one."""
        first: QWidget | None = None
        for problem in problems:
            key = field_for(problem)
            if key == BANNER_FIELD or key not in self.errors:
                self._show_banner(friendly_message(key, problem))
                continue
            error = self.errors[key]
            if not error.has_message():  # the first problem of a field is the one to fix first
                error.show_message(friendly_message(key, problem))
            if first is None:
                first = self.fields[key]
        if first is not None:
            first.setFocus(Qt.FocusReason.OtherFocusReason)
            if isinstance(first, QLineEdit):
                first.selectAll()

    def _show_conflict(self, exc: Conflict) -> None:
        self._show_banner(f"Not saved: this patient may already be registered. {exc.message}")
        for key, words in (("abha_number", "ABHA number"), ("abha_address", "ABHA address")):
            if words in exc.message:
                self.errors[key].show_message(f"This {words} belongs to a patient already registered here.")
                self.fields[key].setFocus(Qt.FocusReason.OtherFocusReason)
                return

    def _show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setAccessibleDescription(text)
        self.banner.show()

    def _clear_error(self, key: str) -> None:
        self.errors[key].clear_message()

    def _clear_all_errors(self) -> None:
        for error in self.errors.values():
            error.clear_message()
        self.banner.setText("")
        self.banner.hide()

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.save_button.setEnabled(not saving)
        self.save_button.setText("Saving…" if saving else "Save (Enter)")

    def _fill(self, values: Mapping[str, str]) -> None:
        self._clear_all_errors()
        for key, field in self.fields.items():
            value = values.get(key, "")
            if isinstance(field, QComboBox):
                field.setCurrentIndex(max(field.findData(value), 0))
            else:
                field.setText(value)

    def _record_data(self) -> dict[str, object]:
        """The typed values as a record (create: the fields given; edit: the fields that changed)."""
        typed = self.values()
        record: dict[str, object] = {}
        for key in ("name", "gender", "year_of_birth", "mobile", "abha_number", "abha_address"):
            record[key] = typed[key] or None
        raw_date = typed["date_of_birth"]
        record["date_of_birth"] = (parse_date(raw_date) or raw_date) if raw_date else None
        address = {part: typed[key] or None for key, part in _ADDRESS_PARTS.items()}
        record["address"] = address if any(address.values()) else None
        if self._editing is None:
            return {key: value for key, value in record.items() if value is not None}
        before = _record_of(self._editing)
        return {key: value for key, value in record.items() if value != before.get(key)}


def _record_of(patient: Patient) -> dict[str, object]:
    """A stored patient in the shape `_record_data` builds, to see what an edit changed."""
    data = patient.model_dump(mode="json")
    record: dict[str, object] = {key: data.get(key) for key in ("name", "gender", "mobile", "abha_number")}
    record["abha_address"] = data.get("abha_address")
    record["year_of_birth"] = str(patient.year_of_birth)
    record["date_of_birth"] = data.get("date_of_birth")
    address = data.get("address") or None
    record["address"] = dict(address) if address and any(address.values()) else None
    return record


def _form_values(patient: Patient) -> dict[str, str]:
    """A stored patient as the text of each form field."""
    address = patient.address
    born = patient.date_of_birth
    return {
        "name": patient.name,
        "gender": str(patient.gender),
        "year_of_birth": str(patient.year_of_birth),
        "mobile": (patient.mobile or "").removeprefix("+91"),
        "date_of_birth": f"{born:%d-%m-%Y}" if born else "",
        "abha_number": patient.abha_number or "",
        "abha_address": patient.abha_address or "",
        "address_line": (address.line or "") if address else "",
        "district": (address.district or "") if address else "",
        "state": (address.state or "") if address else "",
        "pincode": (address.pincode or "") if address else "",
    }
