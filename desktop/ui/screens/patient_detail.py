"""`PatientDetailScreen`: one patient's fields and the history of values that were replaced or lost a conflict.

The patient and its history (`PatientService.get` / `history`) are read through `Runner.run_query`. The
history lists each earlier value with why it is no longer current: changed on this computer, replaced by a
newer value from another computer, or an older value from another computer that arrived after a newer one
(per-field last-writer-wins keeps the loser here; nothing is thrown away).

Keyboard: Ctrl+E (or Enter on "Edit") edits; Tab reaches the history table; Esc goes back to the search box.
With an encounter service: Ctrl+Shift+N (or the button) starts a new encounter; Enter on one of the patient's
encounters in the list opens it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.ui.error_dialogs import present_error
from desktop.ui.models.patient_table import age_text, mobile_text
from desktop.ui.runner import PresentError, Runner
from desktop.ui.signals import emit
from desktop.ui.style import OK_COLOR
from shared.ids import format_abha_number
from shared.records.patient import Patient

FIELD_WORDS = {
    "name": "Name",
    "gender": "Sex",
    "year_of_birth": "Year of birth",
    "mobile": "Mobile",
    "date_of_birth": "Date of birth",
    "abha_number": "ABHA number",
    "abha_address": "ABHA address",
    "address": "Address",
    "deleted": "Deleted",
}
_GENDER_WORDS = {"M": "Male", "F": "Female", "O": "Other", "U": "Unknown"}
NO_HISTORY = "No earlier values: nothing about this patient has been changed or merged."


def value_text(field: str, value: Any) -> str:
    """A stored JSON value as a person reads it."""
    if value is None or value == "":
        return "(empty)"
    if field == "gender":
        return _GENDER_WORDS.get(str(value), str(value))
    if field == "mobile":
        return mobile_text(str(value))
    if field == "abha_number":
        return format_abha_number(str(value))
    if field == "address" and isinstance(value, dict):
        return ", ".join(str(part) for part in value.values() if part) or "(empty)"
    if field == "deleted":
        return "yes" if value else "no"
    return str(value)


def why_text(side: str, source: str) -> str:
    """Why a history value is no longer current."""
    if source == "sync":
        if side == "incoming":
            return "Older value from another computer; the newer one here was kept"
        return "Replaced by a newer value from another computer"
    if source == "import":
        return "Replaced by a file import"
    return "Changed on this computer"


def _when_text(when: datetime | None) -> str:
    return f"{when.astimezone():%d %b %Y %H:%M}" if when is not None else ""


class PatientDetailScreen(QWidget):
    """Fields of one patient and its value history.

    Args:
        runner: reads go through `run_query`.
        patients: the patient service.
        error_presenter: shows a failed read.
        parent: Qt parent.
    """

    edit_requested = Signal(object)  # Patient
    new_encounter_requested = Signal(object)  # Patient
    encounter_requested = Signal(object, object)  # encounter id, Patient
    timeline_requested = Signal(object)  # Patient
    back_requested = Signal()
    loaded = Signal(object)  # Patient

    def __init__(
        self,
        runner: Runner,
        patients: PatientService,
        *,
        error_presenter: PresentError = present_error,
        encounters: EncounterService | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._patients = patients
        self._encounters = encounters
        self._present_error = error_presenter
        self._patient: Patient | None = None
        self._wanted: uuid.UUID | None = None
        self.heading = QLabel("", self)
        self.heading.setProperty("role", "heading")
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.heading.setAccessibleName("Patient name")
        self.summary = QLabel("", self)
        self.summary.setProperty("role", "hint")
        self.notice = QLabel("", self)
        self.notice.setStyleSheet(f"color: {OK_COLOR}; font-weight: 600;")
        self.notice.setAccessibleName("Saved")
        self.notice.hide()
        self.edit_button = QPushButton("&Edit (Ctrl+E)", self)
        self.edit_button.setAutoDefault(True)
        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(14)
        for field in ("mobile", "date_of_birth", "abha_number", "abha_address", "address"):
            label = QLabel("", self)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            label.setAccessibleName(FIELD_WORDS[field])
            self.values[field] = label
            form.addRow(f"{FIELD_WORDS[field]}:", label)
        self.history_title = QLabel("Earlier values", self)
        self.history_title.setStyleSheet("font-weight: 600;")
        self.history_note = QLabel(NO_HISTORY, self)
        self.history_note.setProperty("role", "hint")
        self.history_note.setWordWrap(True)
        self.history_note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.history = QTableWidget(0, 4, self)
        self.history.setHorizontalHeaderLabels(["Field", "Earlier value", "Recorded", "Why it changed"])
        self.history.setAccessibleName("Earlier values of this patient")
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setTabKeyNavigation(False)
        self.history.verticalHeader().hide()
        self.history.setWordWrap(False)
        header = self.history.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.encounter_button = QPushButton("New e&ncounter (Ctrl+Shift+N)", self)
        self.timeline_button = QPushButton("Health &timeline (Ctrl+T)", self)
        self._timeline_shortcut = QShortcut(QKeySequence("Ctrl+T"), self)
        self._timeline_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.encounter_list = QListWidget(self)
        self.encounter_list.setAccessibleName("Encounters of this patient")
        self.encounter_list.setMaximumHeight(96)
        self._encounter_shortcut = QShortcut(QKeySequence("Ctrl+Shift+N"), self)
        self._encounter_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for widget in (self.encounter_button, self.encounter_list, self.timeline_button):
            widget.setVisible(encounters is not None)
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.timeline_button, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.encounter_button, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.notice)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addSpacing(6)
        layout.addLayout(form)
        layout.addWidget(self.encounter_list)
        layout.addSpacing(10)
        layout.addWidget(self.history_title)
        # The note and the table share one stretching area, so the fields above keep their places either way.
        self.history_area = QStackedWidget(self)
        self.history_area.addWidget(self.history_note)
        self.history_area.addWidget(self.history)
        layout.addWidget(self.history_area, 1)
        self._back_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._back_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._connect_signals()

    def _connect_signals(self) -> None:
        self.edit_button.clicked.connect(self.on_edit_button_clicked)
        self._back_shortcut.activated.connect(self.on_back_shortcut_activated)
        self.encounter_button.clicked.connect(self.on_encounter_button_clicked)
        self._encounter_shortcut.activated.connect(self.on_encounter_button_clicked)
        self.timeline_button.clicked.connect(self.on_timeline_requested)
        self._timeline_shortcut.activated.connect(self.on_timeline_requested)
        self.encounter_list.itemActivated.connect(self.on_encounter_list_item_activated)

    @property
    def patient(self) -> Patient | None:
        """The patient shown."""
        return self._patient

    def show_patient(self, patient_id: uuid.UUID) -> None:
        """Read the patient and its history, then show them (an older read that arrives late is dropped)."""
        if patient_id != self._wanted:
            self.notice.hide()
        self._wanted = patient_id
        patients = self._patients
        encounters = self._encounters
        self._runner.run_query(
            self,
            lambda: (patients.get(patient_id), patients.history(patient_id)),
            lambda loaded: self._on_loaded(patient_id, loaded),
            self._on_load_failed,
        )
        if encounters is not None:
            self._runner.run_query(
                self, lambda: encounters.for_patient(patient_id), lambda found: self._show_encounters(patient_id, found)
            )

    def _show_encounters(self, patient_id: uuid.UUID, found: list[Any]) -> None:
        if patient_id != self._wanted:
            return
        self.encounter_list.clear()
        for encounter in found:
            when = f"{encounter.start_time.astimezone():%d %b %Y %H:%M}"
            text = f"{when} · {encounter.status.value} · {encounter.chief_complaint}"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, encounter.id)
            self.encounter_list.addItem(item)
        if not found:
            self.encounter_list.addItem(QListWidgetItem("No encounters yet (Ctrl+Shift+N starts one)"))

    @Slot()
    def on_encounter_button_clicked(self) -> None:
        if self._patient is not None and self._encounters is not None:
            emit(self.new_encounter_requested, self._patient)

    @Slot()
    def on_timeline_requested(self) -> None:
        if self._patient is not None and self._encounters is not None:
            emit(self.timeline_requested, self._patient)

    @Slot(QListWidgetItem)
    def on_encounter_list_item_activated(self, item: QListWidgetItem) -> None:
        encounter_id = item.data(Qt.ItemDataRole.UserRole)
        if self._patient is not None and encounter_id is not None:
            emit(self.encounter_requested, encounter_id, self._patient)

    def show_notice(self, text: str) -> None:
        """A green line above the patient (e.g. "Saved Radha Kumari."), until another patient is shown."""
        self.notice.setText(text)
        self.notice.setAccessibleDescription(text)
        self.notice.show()

    @Slot(object)
    def on_data_changed(self, result: object) -> None:
        """Read the shown patient again when a write touched it, or after a sync brought changes."""
        if self._patient is None:
            return
        if not isinstance(result, Patient) or result.id == self._patient.id:
            self.show_patient(self._patient.id)

    @Slot()
    def on_edit_button_clicked(self) -> None:
        if self._patient is not None:
            emit(self.edit_requested, self._patient)

    @Slot()
    def on_back_shortcut_activated(self) -> None:
        emit(self.back_requested)

    def _on_loaded(self, patient_id: uuid.UUID, loaded: tuple[Patient, list[Any]]) -> None:
        if patient_id != self._wanted:
            return
        patient, history = loaded
        self._patient = patient
        self.heading.setText(patient.name)
        self.summary.setText(f"{age_text(patient)} (born {patient.year_of_birth})")
        self.values["mobile"].setText(value_text("mobile", patient.mobile))
        born = patient.date_of_birth
        self.values["date_of_birth"].setText(f"{born:%d-%m-%Y}" if born else "(empty)")
        self.values["abha_number"].setText(value_text("abha_number", patient.abha_number))
        self.values["abha_address"].setText(value_text("abha_address", patient.abha_address))
        address = patient.address.model_dump() if patient.address is not None else None
        self.values["address"].setText(value_text("address", address))
        self._show_history(list(reversed(history)))  # newest first
        emit(self.loaded, patient)

    def _show_history(self, history: list[Any]) -> None:
        self.history.setRowCount(len(history))
        for row, entry in enumerate(history):
            cells = (
                FIELD_WORDS.get(entry.field, entry.field),
                value_text(entry.field, entry.value),
                _when_text(entry.recorded_at),
                why_text(entry.side, entry.source),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.history.setItem(row, column, item)
        self.history_area.setCurrentWidget(self.history if history else self.history_note)

    def _on_load_failed(self, exc: BaseException) -> None:
        self._patient = None
        self.heading.setText("")
        self._present_error(self, exc)
