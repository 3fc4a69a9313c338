"""`EncounterScreen`: the SOAP note on the left, the Rx pad on the right; save, complete, then only addenda.

Sections: chief complaint and visit type; Subjective; Objective (vitals with inline messages as each field is
left — BP "140/90", pulse, respiratory rate, temperature with °C/°F, SpO2, weight, height → BMI — and the
examination); Assessment (a diagnosis picker searching the shipped condition list by name, synonym, SNOMED
CT id or ICD-10 code; the first diagnosis is the primary, the rest secondary; text not in the list is kept as
free text; AYUSH prakriti/dosha); Plan (investigations one per line, follow-up); the Rx pad (filled from the
note's typed Rx lines, or from the saved prescription's lines written out when the note has none; with the
clinic server's refusal of the synced draft, if any, until the next save).

Saving (Ctrl+S) writes the note (with the typed Rx lines) and, when nothing blocks it, the checked
prescription draft, in one write on the writer thread; a blocked prescription is reported and the note is
still saved. Completing (Ctrl+Enter, with confirmation) saves, then completes: afterwards everything is read
only and Ctrl+Shift+A adds an addendum. Implausible vitals keep the whole save from happening.

Keyboard: Tab walks the note top to bottom and then the Rx pad; Ctrl+L jumps to the Rx pad, Ctrl+D to the
diagnosis picker; in the picker ↓ opens the suggestions and Enter adds the diagnosis; Delete removes the
selected diagnosis from the list; Ctrl+W saves a draft and closes the screen.

A signed prescription shows its status beside the encounter's (signed, DISPENSED, CANCELLED, SUPERSEDED, and
"waiting to sync" until the server holds it). Its prescriber cancels it with Ctrl+Shift+C ("Cancel
prescription…", with a typed reason; `desktop.services.rx_status`); a cancelled one is never printed again
(the Sign & print button is disabled and says why). When the clinic server refused a cancellation for good, a
line under the status says so in words (`rx_refusals.refusal_notice`: the prescription is NOT cancelled on the
server, and what to do), in the error colour while the prescription is not ended; the cancel action is then
offered again ("Cancel again…", Ctrl+Shift+C), since the refused event does not count.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QCompleter,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.services.encounters import VITAL_FIELDS, EncounterService, InChair, vitals_from_form
from desktop.services.patient_conditions import EarlierCondition, EarlierConditions
from desktop.services.prescribing import (
    Clinician,
    PrescriberContext,
    PrescribingService,
    PrescriptionBlocked,
    StoredPrescription,
    conditions_of,
    prescriber_for,
)
from desktop.services.rx_signing import RxSigningService, SignedPrint
from desktop.services.rx_status import RxStatus, RxStatusService, SignedRecord
from desktop.ui.error_dialogs import present_error
from desktop.ui.open_file import open_with_system
from desktop.ui.runner import PresentError, Runner
from desktop.ui.screens.override_dialog import ask_override_reason
from desktop.ui.screens.rx_pad import RxPad
from desktop.ui.screens.rx_refusals import RefusalNotice, refusal_notice
from desktop.ui.signals import emit
from desktop.ui.style import ERROR_COLOR, MUTED_COLOR, OK_COLOR, WARNING_COLOR
from desktop.ui.widgets.earlier_conditions import ask_exclusion_reason
from desktop.ui.widgets.field_error import FieldError
from desktop.ui.widgets.reason_dialog import ReasonDialog, ask_reason
from shared.errors import DomainError, RuleViolation
from shared.records.encounter import (
    Encounter,
    EncounterStatus,
    EncounterType,
    SoapNote,
    Vitals,
    condition_vocabulary,
    vital_flags,
)
from shared.records.patient import Patient

TYPE_WORDS = {
    EncounterType.OPD: "OPD visit",
    EncounterType.IPD: "In-patient",
    EncounterType.EMERGENCY: "Emergency",
    EncounterType.HOME_VISIT: "Home visit",
    EncounterType.TELE_VIDEO: "Teleconsultation (video)",
    EncounterType.TELE_AUDIO: "Teleconsultation (audio)",
    EncounterType.TELE_TEXT: "Teleconsultation (text)",
}
_VITAL_LABELS = {
    "bp": ("BP", "mmHg", "140/90"),
    "pulse": ("Pulse", "/min", "78"),
    "respiratory_rate": ("Resp. rate", "/min", "16"),
    "temperature": ("Temp.", "", "98.6"),
    "spo2": ("SpO2", "%", "97"),
    "weight_kg": ("Weight", "kg", "70"),
    "height_cm": ("Height", "cm", "165"),
}
LABEL_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2
CODE_ROLE = Qt.ItemDataRole.UserRole + 3

Confirm = Callable[[QWidget, str, str], bool]


def ask_cancel_reason(parent: QWidget, what: str) -> str | None:
    """Why the doctor cancels his signed prescription (typed; None when he steps back)."""
    dialog = ReasonDialog(
        title="Cancel prescription",
        blocks=[
            f"<b>Cancel the signed prescription {html.escape(what)}</b>",
            "It is recorded as cancelled, signed with your key, and reaches the clinic server and its other PCs "
            "at the next sync. It can never be printed again. A pharmacist checking the printed QR offline cannot "
            "see the cancellation: take the printout back if you can.",
        ],
        prompt="Why is it cancelled? (kept with the prescription; 1–500 characters)",
        reason_name="Reason for cancelling",
        ok_text="Cancel prescription",
        min_letters=3,
        parent=parent,
    )
    return ask_reason(dialog)


def confirm_with_dialog(parent: QWidget, title: str, text: str) -> bool:
    """Ask yes/no in a modal message box (No is the default button)."""
    answer = QMessageBox.question(
        parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )  # fmt: skip
    return answer == QMessageBox.StandardButton.Yes


def condition_model() -> QStandardItemModel:
    """The shipped condition list as completer rows: shown text, label, search text, (code, system)."""
    vocab = condition_vocabulary()
    model = QStandardItemModel()
    for cid, cond in vocab.file.conditions.items():
        codes = [f"SNOMED {c.code}" for c in cond.snomed] + [f"ICD-10 {c.code}" for c in cond.icd10]
        shown = cond.label + (f"  ({'; '.join(codes)})" if codes else "")
        item = QStandardItem(shown)
        item.setData(cond.label, LABEL_ROLE)
        words = [cond.label, cid.replace("_", " "), *cond.aliases, *(c.code for c in (*cond.snomed, *cond.icd10))]
        item.setData(" | ".join(words).lower(), SEARCH_ROLE)
        code = (cond.snomed[0].code, "snomed") if cond.snomed else (cond.icd10[0].code, "icd10") if cond.icd10 else None
        item.setData(code, CODE_ROLE)
        model.appendRow(item)
    return model


class _ConditionCompleter(QCompleter):
    def pathFromIndex(self, index: QModelIndex | QPersistentModelIndex) -> str:
        return str(index.data(LABEL_ROLE))

    def splitPath(self, path: str) -> list[str]:
        return [path.lower()]


class DiagnosisPicker(QLineEdit):
    """Type a name, synonym, SNOMED CT id or ICD-10 code; ↓ and Enter pick; Enter on other text adds it as text."""

    picked = Signal(object)  # dict: Diagnosis fields

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Add diagnosis: name, synonym, SNOMED CT or ICD-10 code (Enter adds)")
        self.setAccessibleName("Diagnosis")
        self.model = QStandardItemModel(self)  # filled by `load_conditions` once the list is parsed off-thread
        completer = _ConditionCompleter(self.model, self)
        completer.setCompletionRole(SEARCH_ROLE)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        completer.setMaxVisibleItems(8)
        self.setCompleter(completer)
        self._completer = completer
        completer.activated[QModelIndex].connect(self.on_completer_activated)  # type: ignore[index]

    def load_conditions(self) -> None:
        """Fill the suggestions from the shipped condition list (parsed and cached by then)."""
        if self.model.rowCount() == 0:
            source = condition_model()
            while source.rowCount():
                self.model.appendRow(source.takeRow(0))

    def popup(self) -> QAbstractItemView:
        """The suggestions list."""
        popup = self._completer.popup()
        assert popup is not None
        return popup

    @Slot(QModelIndex)
    def on_completer_activated(self, index: QModelIndex) -> None:
        code = index.data(CODE_ROLE)
        picked: dict[str, Any] = {"condition": str(index.data(LABEL_ROLE))}
        if code:
            picked["code"], picked["system"] = code
        self.clear()
        emit(self.picked, picked)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        popup = self.popup()
        if event.key() == Qt.Key.Key_Down and not popup.isVisible() and self.text().strip():
            self._completer.setCompletionPrefix(self.text())
            self._completer.complete()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not popup.isVisible():
            text = " ".join(self.text().split())
            if text:
                self.clear()
                emit(self.picked, self._from_text(text))
            return
        super().keyPressEvent(event)

    @staticmethod
    def _from_text(text: str) -> dict[str, Any]:
        """A typed code the list knows ("E11.9", "SNOMED:195967001") becomes that coded diagnosis; else free text."""
        vocab = condition_vocabulary()
        hit = vocab.resolve(text)
        if not hit.ids:
            return {"condition": text}
        label = vocab.label(hit.ids[0])
        if any(ch.isdigit() for ch in text):  # a code as typed: kept exactly (E11.9 is below the listed E11)
            bare = text.split(":")[-1].strip().upper()
            return {"condition": label, "code": bare, "system": "snomed" if bare.isdigit() else "icd10"}
        cond = vocab.file.conditions[hit.ids[0]]
        if cond.snomed:
            return {"condition": label, "code": cond.snomed[0].code, "system": "snomed"}
        if cond.icd10:
            return {"condition": label, "code": cond.icd10[0].code, "system": "icd10"}
        return {"condition": label}


class DiagnosisList(QListWidget):
    """Chosen diagnoses, the first is the primary; Delete removes the selected one."""

    removed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.currentRow() >= 0:
            self.takeItem(self.currentRow())
            emit(self.removed)
            return
        super().keyPressEvent(event)


def diagnosis_text(dx: dict[str, Any], primary: bool) -> str:
    code = f" — {'SNOMED' if dx.get('system') == 'snomed' else 'ICD-10'} {dx['code']}" if dx.get("code") else " (text)"
    return f"{'Primary: ' if primary else 'Secondary: '}{dx['condition']}{code}"


@dataclass(frozen=True)
class SaveOutcome:
    """What one Save wrote: the encounter, and the prescription (or why it was not saved)."""

    encounter: Encounter
    prescription: StoredPrescription | None
    blocked: PrescriptionBlocked | None


@dataclass(frozen=True)
class Loaded:
    encounter: Encounter
    overrides: dict[str, str]
    prescription: StoredPrescription | None
    earlier: EarlierConditions = field(default_factory=EarlierConditions)  # conditions from earlier visits
    sync_refusal: dict[str, Any] | None = None  # the server's refusal of the synced draft, until the next save


def _text_edit(parent: QWidget, name: str, height: int, hint: str = "") -> QPlainTextEdit:
    edit = QPlainTextEdit(parent)
    edit.setAccessibleName(name)
    edit.setTabChangesFocus(True)
    edit.setFixedHeight(height)
    edit.setPlaceholderText(hint)
    return edit


class EncounterScreen(QWidget):
    """One encounter.

    Args:
        runner: writes via `run_op`, reads via `run_query`.
        encounters: the encounter service.
        prescribing: the prescribing service.
        doctor: the signed-in user (`Clinician.of(local_user)`; its profile gives qualification, system of
            medicine and state).
        confirm: asks yes/no (tests pass their own; default a message box).
        ask_reason: asks for an override reason (default `OverrideDialog`).
        error_presenter: shows unexpected failures.
        parent: Qt parent.
    """

    closed = Signal()
    saved = Signal(object)  # Encounter
    loaded = Signal(object)  # Encounter

    def __init__(
        self,
        runner: Runner,
        encounters: EncounterService,
        prescribing: PrescribingService,
        doctor: Clinician,
        *,
        confirm: Confirm = confirm_with_dialog,
        ask_reason: Callable[[QWidget, Any], str | None] = ask_override_reason,
        ask_exclusion: Callable[[QWidget, EarlierCondition], str | None] = ask_exclusion_reason,
        error_presenter: PresentError = present_error,
        rx_signing: RxSigningService | None = None,
        rx_status: RxStatusService | None = None,
        ask_cancel: Callable[[QWidget, str], str | None] = ask_cancel_reason,
        open_file: Callable[[Path], None] = open_with_system,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._rx_signing = rx_signing
        self._rx_status = rx_status
        self._ask_cancel = ask_cancel
        self._signed: tuple[SignedRecord, RxStatus] | None = None
        self._open_file = open_file
        self._runner = runner
        self._encounters = encounters
        self._prescribing = prescribing
        self._doctor = doctor
        self._confirm = confirm
        self._ask_reason = ask_reason
        self._ask_exclusion = ask_exclusion
        self._present_error = error_presenter
        self._encounter: Encounter | None = None
        self._patient: Patient | None = None
        self._busy = False
        self._build()
        self._connect_signals()
        self._set_editable(False)

    # -- layout -------------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.heading = QLabel("", self)
        self.heading.setProperty("role", "heading")
        self.status_chip = QLabel("", self)
        self.type_box = QComboBox(self)
        self.type_box.setAccessibleName("Visit type")
        for kind, words in TYPE_WORDS.items():
            self.type_box.addItem(words, kind.value)
        self.complaint = QLineEdit(self)
        self.complaint.setAccessibleName("Chief complaint")
        self.complaint.setPlaceholderText("Chief complaint")
        self.complaint_error = FieldError(self.complaint, self)

        note = QWidget(self)
        form = QVBoxLayout(note)
        form.setContentsMargins(0, 0, 6, 0)
        form.setSpacing(4)
        top = QFormLayout()
        top.addRow("&Visit:", self.type_box)
        top.addRow("Chief &complaint:", self.complaint)
        top.addRow("", self.complaint_error)
        form.addLayout(top)

        self.subjective = _text_edit(note, "Subjective", 54, "History, symptoms as the patient tells them")
        form.addWidget(self._section("S — Subjective", self.subjective))

        objective = QWidget(note)
        grid = QGridLayout(objective)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(0)
        self.vitals: dict[str, QLineEdit] = {}
        self.vital_errors: dict[str, FieldError] = {}
        self.vital_flags: dict[str, QLabel] = {}
        for n, name in enumerate(VITAL_FIELDS):
            label, unit, example = _VITAL_LABELS[name]
            edit = QLineEdit(objective)
            edit.setAccessibleName(label)
            edit.setPlaceholderText(example)
            edit.setFixedWidth(84 if name == "bp" else 56)
            self.vitals[name] = edit
            error = FieldError(edit, objective)
            self.vital_errors[name] = error
            flag = QLabel(objective)  # an accepted but critical value (shared `vital_flags`): amber, not an error
            flag.setWordWrap(True)
            flag.setTextFormat(Qt.TextFormat.PlainText)
            flag.setStyleSheet(f"color: {WARNING_COLOR}; font-weight: 600;")
            flag.setAccessibleName(f"Critical {label}")
            flag.hide()
            self.vital_flags[name] = flag
            row, col = divmod(n, 3)
            cell = QHBoxLayout()
            cell.setSpacing(3)
            cell.addWidget(QLabel(label, objective))
            cell.addWidget(edit)
            if name == "temperature":
                self.temperature_unit = QComboBox(objective)
                self.temperature_unit.addItem("°F", "F")
                self.temperature_unit.addItem("°C", "C")
                self.temperature_unit.setAccessibleName("Temperature unit")
                cell.addWidget(self.temperature_unit)
            elif unit:
                cell.addWidget(QLabel(unit, objective))
            cell.addStretch(1)
            grid.addLayout(cell, row * 2, col)
            below = QVBoxLayout()
            below.setSpacing(0)
            below.addWidget(error)
            below.addWidget(flag)
            grid.addLayout(below, row * 2 + 1, col)
        self.bmi = QLabel("BMI —", objective)
        self.bmi.setAccessibleName("BMI")
        grid.addWidget(self.bmi, 4, 1)
        self.examination = _text_edit(note, "Examination", 46, "Examination findings")
        obj_box = QWidget(note)
        obj_layout = QVBoxLayout(obj_box)
        obj_layout.setContentsMargins(0, 0, 0, 0)
        obj_layout.setSpacing(3)
        obj_layout.addWidget(objective)
        obj_layout.addWidget(self.examination)
        form.addWidget(self._section("O — Objective: vitals and examination", obj_box))

        self.picker = DiagnosisPicker(note)
        self.diagnoses = DiagnosisList(note)
        self.diagnoses.setAccessibleName("Diagnoses")
        self.diagnoses.setMaximumHeight(62)
        self.assessment_notes = _text_edit(note, "Assessment notes", 36, "Assessment notes")
        self.prakriti = QLineEdit(note)
        self.prakriti.setAccessibleName("Prakriti")
        self.prakriti.setPlaceholderText("Prakriti (e.g. Vata-Pitta)")
        self.dosha = QLineEdit(note)
        self.dosha.setAccessibleName("Dosha")
        self.dosha.setPlaceholderText("Dosha imbalance (e.g. Kapha vriddhi)")
        ayush = QHBoxLayout()
        ayush.addWidget(QLabel("AYUSH:", note))
        ayush.addWidget(self.prakriti)
        ayush.addWidget(self.dosha)
        assess = QWidget(note)
        assess_layout = QVBoxLayout(assess)
        assess_layout.setContentsMargins(0, 0, 0, 0)
        assess_layout.setSpacing(3)
        for widget in (self.picker, self.diagnoses, self.assessment_notes):
            assess_layout.addWidget(widget)
        assess_layout.addLayout(ayush)
        form.addWidget(self._section("A — Assessment", assess))

        self.investigations = _text_edit(note, "Investigations", 40, "Investigations, one per line")
        self.followup = QLineEdit(note)
        self.followup.setAccessibleName("Follow-up")
        self.followup.setPlaceholderText("Follow-up (e.g. review in 2 weeks with HbA1c)")
        plan = QWidget(note)
        plan_layout = QVBoxLayout(plan)
        plan_layout.setContentsMargins(0, 0, 0, 0)
        plan_layout.setSpacing(3)
        plan_layout.addWidget(self.investigations)
        plan_layout.addWidget(self.followup)
        form.addWidget(self._section("P — Plan", plan))

        self.addenda_box = QGroupBox("Addenda (the completed note cannot change)", note)
        addenda_layout = QVBoxLayout(self.addenda_box)
        self.addenda_list = QLabel("", self.addenda_box)
        self.addenda_list.setWordWrap(True)
        self.addendum = _text_edit(self.addenda_box, "Addendum", 50, "Addendum text")
        self.addendum_button = QPushButton("Add addendum (Ctrl+Shift+A)", self.addenda_box)
        addenda_layout.addWidget(self.addenda_list)
        addenda_layout.addWidget(self.addendum)
        addenda_layout.addWidget(self.addendum_button, 0, Qt.AlignmentFlag.AlignRight)
        self.addenda_box.hide()
        form.addWidget(self.addenda_box)
        form.addStretch(1)

        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(note)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.note_scroll = scroll

        self.pad = RxPad(self._prescribing, self)
        # The signed prescription's status, over the pad it is about (word-wrapped: the reason may be long).
        self.rx_status_label = self._status_line("Prescription status")
        # The clinic server's refusal of a cancellation signed here: the prescription is still valid there.
        self.rx_refusal_label = self._status_line("Server refusal of the prescription status")
        self.rx_refusal_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # to quote it
        rx_side = QWidget(self)
        rx_layout = QVBoxLayout(rx_side)
        rx_layout.setContentsMargins(0, 0, 0, 0)
        rx_layout.setSpacing(2)
        rx_layout.addWidget(self.rx_status_label)
        rx_layout.addWidget(self.rx_refusal_label)
        rx_layout.addWidget(self.pad, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(scroll)
        splitter.addWidget(rx_side)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 6)
        splitter.setSizes([560, 780])
        splitter.setChildrenCollapsible(False)

        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setAccessibleName("Message")
        self.save_button = QPushButton("&Save draft (Ctrl+S)", self)
        self.complete_button = QPushButton("Co&mplete… (Ctrl+Enter)", self)
        self.close_button = QPushButton("Save && close (Ctrl+W)", self)
        self.sign_button = QPushButton("Sign && &print… (Ctrl+P)", self)
        self.sign_button.setToolTip("Complete the encounter, sign the prescription with your key, print it with its QR")
        self.sign_button.setVisible(self._rx_signing is not None)
        self.cancel_rx_button = QPushButton("Cancel prescription… (Ctrl+Shift+C)", self)
        self.cancel_rx_button.setToolTip("Cancel your signed prescription, with a reason; it is never printed again")
        self.cancel_rx_button.setVisible(False)
        for button in (
            self.save_button,
            self.complete_button,
            self.sign_button,
            self.cancel_rx_button,
            self.close_button,
        ):
            button.setAutoDefault(False)
        header = QHBoxLayout()
        header.addWidget(self.heading, 1)
        header.addWidget(self.status_chip)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.complete_button)
        buttons.addWidget(self.sign_button)
        buttons.addWidget(self.cancel_rx_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)

        self._shortcuts = {
            "save": QShortcut(QKeySequence("Ctrl+S"), self),
            "complete": QShortcut(QKeySequence("Ctrl+Return"), self),
            "complete2": QShortcut(QKeySequence("Ctrl+Enter"), self),
            "addendum": QShortcut(QKeySequence("Ctrl+Shift+A"), self),
            "pad": QShortcut(QKeySequence("Ctrl+L"), self),
            "diagnosis": QShortcut(QKeySequence("Ctrl+D"), self),
            "close": QShortcut(QKeySequence("Ctrl+W"), self),
            "sign": QShortcut(QKeySequence("Ctrl+P"), self),
            "cancel_rx": QShortcut(QKeySequence("Ctrl+Shift+C"), self),
        }
        for shortcut in self._shortcuts.values():
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.pad.set_tab_neighbours(self.addendum_button, self.save_button)
        QWidget.setTabOrder(self.save_button, self.complete_button)
        QWidget.setTabOrder(self.complete_button, self.sign_button)
        QWidget.setTabOrder(self.sign_button, self.cancel_rx_button)
        QWidget.setTabOrder(self.cancel_rx_button, self.close_button)

    @staticmethod
    def _section(title: str, body: QWidget) -> QGroupBox:
        box = QGroupBox(title)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(body)
        return box

    def _connect_signals(self) -> None:
        self._shortcuts["save"].activated.connect(self.on_save_requested)
        self._shortcuts["complete"].activated.connect(self.on_complete_requested)
        self._shortcuts["complete2"].activated.connect(self.on_complete_requested)
        self._shortcuts["addendum"].activated.connect(self.on_addendum_requested)
        self._shortcuts["pad"].activated.connect(lambda: self.pad.focus_line(0))
        self._shortcuts["diagnosis"].activated.connect(lambda: self.picker.setFocus(Qt.FocusReason.ShortcutFocusReason))
        self._shortcuts["close"].activated.connect(self.on_close_requested)
        self._shortcuts["sign"].activated.connect(self.on_sign_requested)
        self.sign_button.clicked.connect(self.on_sign_requested)
        self._shortcuts["cancel_rx"].activated.connect(self.on_cancel_rx_requested)
        self.cancel_rx_button.clicked.connect(self.on_cancel_rx_requested)
        self.save_button.clicked.connect(self.on_save_requested)
        self.complete_button.clicked.connect(self.on_complete_requested)
        self.close_button.clicked.connect(self.on_close_requested)
        self.addendum_button.clicked.connect(self.on_addendum_requested)
        self.picker.picked.connect(self.on_picker_picked)
        self.diagnoses.removed.connect(self.on_diagnoses_changed)
        self.pad.override_requested.connect(self.on_pad_override_requested)
        self.pad.earlier.toggle_requested.connect(self.on_pad_earlier_toggle_requested)
        self.type_box.currentIndexChanged.connect(self.on_type_changed)
        for name, edit in self.vitals.items():
            edit.editingFinished.connect(lambda n=name: self.check_vital(n))
        self.temperature_unit.currentIndexChanged.connect(lambda _i: self.check_vital("temperature"))

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab from the note's last field goes to the Rx pad's first line (the addenda box between them shows
        only for a completed encounter), whatever the pad's rows went through since they were laid out."""
        at_followup = next and QApplication.focusWidget() is self.followup
        if at_followup and not self.addendum_button.isVisible() and self.pad.rows and self.pad.rows[0].edit.isEnabled():
            self.pad.focus_line(0)
            return True
        return super().focusNextPrevChild(next)

    # -- opening ------------------------------------------------------------------------------------------

    @property
    def encounter(self) -> Encounter | None:
        return self._encounter

    def start_new(self, patient: Patient, chief_complaint: str = "Consultation") -> None:
        """Start a draft encounter for the patient (written at once, so nothing typed is lost on a crash)."""
        self._patient = patient
        encounters, doctor_id = self._encounters, self._doctor.user_id
        data = {
            "patient_id": str(patient.id), "encounter_type": EncounterType.OPD.value,
            "start_time": datetime.now(UTC), "chief_complaint": chief_complaint,
        }  # fmt: skip
        self._runner.run_op(self, lambda: encounters.start(data, doctor_id), self._after_start, self._on_failed)

    def _after_start(self, encounter: Encounter) -> None:
        self.open_encounter(encounter.id, self._patient)

    def open_encounter(self, encounter_id: uuid.UUID, patient: Patient | None = None) -> None:
        """Read the encounter, its overrides and its saved prescription, then show them."""
        if patient is not None:
            self._patient = patient
        encounters, rx = self._encounters, self._prescribing

        def read() -> Loaded:
            rx.warm_up()  # the knowledge files are parsed here, off the GUI thread, on first use
            condition_vocabulary()
            saved = rx.saved(encounter_id)
            return Loaded(
                encounters.get(encounter_id),
                rx.override_reasons(encounter_id),
                saved,
                rx.patient_conditions.earlier(encounter_id),
                # read with the prescription (`PrescribingService.sync_refusal` is this field), so both agree
                saved.sync_refusal if saved is not None else None,
            )

        self._runner.run_query(self, read, self._show, self._on_failed)

    def _show(self, loaded: Loaded) -> None:
        encounter = loaded.encounter
        self._encounter = encounter
        self.picker.load_conditions()
        self._encounters.set_in_chair(InChair(encounter.patient_id, encounter.id))
        who = self._patient.name if self._patient is not None else "Patient"
        self.heading.setText(f"Encounter — {who} · {encounter.start_time.astimezone():%d %b %Y %H:%M}")
        self.type_box.setCurrentIndex(max(0, self.type_box.findData(encounter.encounter_type.value)))
        self.complaint.setText(encounter.chief_complaint)
        self._fill_note(encounter.soap_note, loaded.prescription)
        self.pad.set_sync_refusal(loaded.sync_refusal)
        self.pad.earlier.show_conditions(loaded.earlier)
        self.pad.set_context(self._prescriber(), self._checked_conditions(), loaded.overrides)
        self._show_status(encounter)
        self.refresh_rx_status()
        emit(self.loaded, encounter)

    def _checked_conditions(self) -> list[str]:
        """This note's diagnoses plus the earlier visits' conditions not excluded for this prescription."""
        return self.pad.earlier.conditions.checked(conditions_of(self.build_note()))

    def _prescriber(self) -> PrescriberContext:
        return prescriber_for(self._doctor.profile, self._doctor.role, str(self.type_box.currentData()))

    def _fill_note(self, note: SoapNote | None, prescription: StoredPrescription | None = None) -> None:
        """Fill the form from the note; the pad from its typed Rx lines, else from the saved prescription's lines.

        A draft written through the REST API, or synced from a PC whose typed lines were not kept, has medicine
        lines but no typed ones in the note: its lines written out ("METFORMIN 500mg bd x 30d") fill the pad so
        the doctor sees them, and they are checked and can be edited like typed ones.
        """
        note = note or SoapNote()
        self.subjective.setPlainText(note.subjective or "")
        objective = note.objective
        vitals = objective.vitals if objective is not None else None
        for name, edit in self.vitals.items():
            value = getattr(vitals, name, None) if vitals is not None else None
            edit.setText("" if value is None else f"{value:g}" if isinstance(value, float) else str(value))
            self.vital_errors[name].clear_message()
            self._show_flags(name, vitals)
        if vitals is not None and vitals.temperature_unit is not None:
            self.temperature_unit.setCurrentIndex(self.temperature_unit.findData(vitals.temperature_unit))
        self.bmi.setText(f"BMI {vitals.bmi:g}" if vitals is not None and vitals.bmi is not None else "BMI —")
        self.examination.setPlainText((objective.examination if objective else None) or note.examination or "")
        self.diagnoses.clear()
        assessment = note.assessment
        if assessment is not None:
            for dx in (assessment.primary_diagnosis, *assessment.secondary_diagnoses):
                if dx is not None:
                    self._add_diagnosis(dx.model_dump(exclude_none=True, exclude={"condition_id"}))
        self.assessment_notes.setPlainText((assessment.notes if assessment else None) or "")
        ayush = assessment.ayush if assessment is not None else None
        self.prakriti.setText((ayush.prakriti if ayush else None) or "")
        self.dosha.setText((ayush.dosha if ayush else None) or "")
        plan = note.plan
        self.investigations.setPlainText("\n".join(plan.investigations) if plan else "")
        self.followup.setText((plan.followup if plan else None) or "")
        lines = [m for m in plan.medications if isinstance(m, str) and m.strip()] if plan else []
        if not lines and prescription is not None:
            lines = [text for text in (str(line.get("text") or "").strip() for line in prescription.lines) if text]
        self.pad.set_lines(lines)

    def _show_status(self, encounter: Encounter) -> None:
        done = encounter.status == EncounterStatus.COMPLETED
        when = f" {encounter.completed_at.astimezone():%d %b %H:%M}" if encounter.completed_at else ""
        self.status_chip.setText(f"Completed{when}" if done else "Draft")
        self.status_chip.setStyleSheet(f"color: {OK_COLOR if done else '#555555'}; font-weight: 600;")
        self._set_editable(not done)
        self.addenda_box.setVisible(done)
        self.addenda_list.setText(
            "<br>".join(
                f"<b>{a.created_at.astimezone():%d %b %Y %H:%M}</b>: {html.escape(a.text)}" for a in encounter.addenda
            )
            or "No addenda yet."
        )

    def _set_editable(self, editable: bool) -> None:
        for edit in (self.complaint, self.picker, self.prakriti, self.dosha, self.followup, *self.vitals.values()):
            edit.setReadOnly(not editable)
        for text in (self.subjective, self.examination, self.assessment_notes, self.investigations):
            text.setReadOnly(not editable)
        for widget in (self.type_box, self.temperature_unit, self.save_button, self.complete_button):
            widget.setEnabled(editable)
        self.diagnoses.setEnabled(editable)
        self.pad.set_read_only(not editable)

    @property
    def is_completed(self) -> bool:
        return self._encounter is not None and self._encounter.status == EncounterStatus.COMPLETED

    # -- the note -----------------------------------------------------------------------------------------

    def _add_diagnosis(self, dx: dict[str, Any]) -> None:
        item = QListWidgetItem(diagnosis_text(dx, self.diagnoses.count() == 0))
        item.setData(Qt.ItemDataRole.UserRole, dx)
        self.diagnoses.addItem(item)

    def diagnosis_values(self) -> list[dict[str, Any]]:
        return [self.diagnoses.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.diagnoses.count())]

    @Slot(object)
    def on_picker_picked(self, dx: dict[str, Any]) -> None:
        if self.is_completed:
            return
        if any(
            d.get("condition") == dx["condition"] and d.get("code") == dx.get("code") for d in self.diagnosis_values()
        ):
            return
        self._add_diagnosis(dx)
        self.on_diagnoses_changed()

    @Slot()
    def on_diagnoses_changed(self) -> None:
        for i in range(self.diagnoses.count()):
            item = self.diagnoses.item(i)
            item.setText(diagnosis_text(item.data(Qt.ItemDataRole.UserRole), i == 0))
        self.pad.set_conditions(self._checked_conditions())

    @Slot()
    def on_type_changed(self) -> None:
        if self._encounter is not None:
            self.pad.set_context(self._prescriber(), self._checked_conditions(), self._overrides_now())

    def _overrides_now(self) -> dict[str, str]:
        result = self.pad.result
        if result is None:
            return {}
        return {a.key: a.overridden_reason for a in result.alerts if a.overridden_reason is not None}

    def check_vital(self, name: str) -> bool:
        """Check one vitals field now and show its inline message; True when it is fine."""
        values = {n: e.text() for n, e in self.vitals.items()}
        values["temperature_unit"] = str(self.temperature_unit.currentData())
        try:
            vitals = vitals_from_form({name: values[name], "temperature_unit": values["temperature_unit"]})
        except RuleViolation as exc:
            self.vital_errors[name].show_message(exc.problems[0].message)
            self._show_flags(name, None)
            return False
        self.vital_errors[name].clear_message()
        self._show_flags(name, vitals)
        if name in ("weight_kg", "height_cm"):
            self._update_bmi()
        return True

    def _show_flags(self, name: str, vitals: Vitals | None) -> None:
        """Show the critical flags of one field (an accepted value: saved as typed, flagged so it is seen)."""
        label = self.vital_flags[name]
        found = [f for f in vital_flags(vitals) if f.field == name] if vitals is not None else []
        label.setText("\n".join(f.brief for f in found))  # the reason in full: tooltip and screen reader
        label.setToolTip("\n".join(f.message for f in found))
        label.setAccessibleDescription(label.toolTip())
        label.setVisible(bool(found))

    def _update_bmi(self) -> None:
        try:
            vitals = vitals_from_form({"weight_kg": self.vitals["weight_kg"].text(),
                                       "height_cm": self.vitals["height_cm"].text()})  # fmt: skip
        except RuleViolation:
            vitals = None
        bmi = vitals.bmi if vitals is not None else None
        self.bmi.setText(f"BMI {bmi:g}" if bmi is not None else "BMI —")

    def build_note(self) -> SoapNote:
        """The note as typed (vitals left out when invalid; `collect` refuses those)."""
        try:
            return SoapNote.model_validate(self._note_dict(include_vitals=True))
        except Exception:
            try:
                return SoapNote.model_validate(self._note_dict(include_vitals=False))
            except Exception:
                return SoapNote()

    def _note_dict(self, *, include_vitals: bool) -> dict[str, Any]:
        def text(value: str) -> str | None:
            return value.strip() or None

        vitals = None
        if include_vitals:
            values = {n: e.text() for n, e in self.vitals.items()}
            values["temperature_unit"] = str(self.temperature_unit.currentData())
            found = vitals_from_form(values)
            vitals = found.model_dump(mode="json", exclude_none=True) if found is not None else None
        dxs = self.diagnosis_values()
        ayush = {k: v for k, v in (("prakriti", text(self.prakriti.text())), ("dosha", text(self.dosha.text()))) if v}
        note: dict[str, Any] = {
            "subjective": text(self.subjective.toPlainText()),
            "objective": {"vitals": vitals, "examination": text(self.examination.toPlainText())},
            "assessment": {
                "primary_diagnosis": dxs[0] if dxs else None,
                "secondary_diagnoses": dxs[1:],
                "ayush": ayush or None,
                "notes": text(self.assessment_notes.toPlainText()),
            },
            "plan": {
                "medications": [line.strip() for line in self.pad.lines() if line.strip()],
                "investigations": [i.strip() for i in self.investigations.toPlainText().splitlines() if i.strip()],
                "followup": text(self.followup.text()),
            },
        }
        return note

    def collect(self) -> dict[str, Any] | None:
        """The `EncounterUpdate` fields, or None (with messages shown) when the vitals are implausible."""
        bad = [name for name in self.vitals if not self.check_vital(name)]
        if bad:
            self.show_message("Not saved: fix the vitals marked in red first.", error=True)
            self.vitals[bad[0]].setFocus(Qt.FocusReason.OtherFocusReason)
            return None
        return {
            "encounter_type": str(self.type_box.currentData()),
            "chief_complaint": self.complaint.text(),
            "soap_note": self._note_dict(include_vitals=True),
        }

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {ERROR_COLOR if error else OK_COLOR};")

    # -- actions ------------------------------------------------------------------------------------------

    def _save_op(self) -> Callable[[], SaveOutcome] | None:
        if self._encounter is None or self.is_completed or self._busy:
            return None
        data = self.collect()
        if data is None:
            return None
        self.pad.refresh_now()
        encounter_id, lines = self._encounter.id, self.pad.lines()
        prescriber, user_id = self._prescriber(), self._doctor.user_id
        encounters, rx = self._encounters, self._prescribing

        def save() -> SaveOutcome:
            saved = encounters.save_draft(encounter_id, data)
            try:
                return SaveOutcome(saved, rx.save(encounter_id, lines, prescriber, user_id), None)
            except PrescriptionBlocked as exc:
                return SaveOutcome(saved, None, exc)

        return save

    @Slot()
    def on_save_requested(self) -> None:
        op = self._save_op()
        if op is None:
            return
        self._busy = True
        self._runner.run_op(self, op, self._on_saved, self._on_failed)

    def _show_saved_refusal(self, outcome: SaveOutcome) -> None:
        """A saved (or discarded) prescription clears the server's refusal; a blocked one leaves it as it was."""
        if outcome.blocked is None:
            self.pad.set_sync_refusal(outcome.prescription.sync_refusal if outcome.prescription else None)

    def _on_saved(self, outcome: SaveOutcome) -> None:
        self._busy = False
        self._encounter = outcome.encounter
        self._show_saved_refusal(outcome)
        if outcome.blocked is not None:
            self.show_message("Note saved. Prescription NOT saved: " + "; ".join(outcome.blocked.problems), error=True)
        else:
            lines = len(outcome.prescription.lines) if outcome.prescription else 0
            self.show_message(
                f"Draft saved at {datetime.now():%H:%M}" + (f" with {lines} medicine(s)." if lines else ".")
            )
        emit(self.saved, outcome.encounter)

    @Slot()
    def on_complete_requested(self) -> None:
        if self._encounter is None or self.is_completed or self._busy:
            return
        self.pad.refresh_now()
        result = self.pad.result
        if result is not None and result.problems:
            self.show_message("Cannot complete: " + "; ".join(result.problems), error=True)
            return
        if not self._confirm(
            self,
            "Complete encounter",
            "Complete this encounter? The note and the prescription cannot be changed afterwards; later notes "
            "go in addenda.",
        ):
            return
        op = self._save_op()
        if op is None:
            return
        encounters, encounter_id = self._encounters, self._encounter.id

        def save_and_complete() -> SaveOutcome:
            outcome = op()
            if outcome.blocked is not None:
                return outcome
            return SaveOutcome(encounters.complete(encounter_id), outcome.prescription, None)

        self._busy = True
        self._runner.run_op(self, save_and_complete, self._on_completed, self._on_failed)

    def _on_completed(self, outcome: SaveOutcome) -> None:
        self._busy = False
        self._encounter = outcome.encounter
        if outcome.blocked is not None:
            self.show_message("Not completed: " + "; ".join(outcome.blocked.problems), error=True)
            return
        self._show_saved_refusal(outcome)
        self._show_status(outcome.encounter)
        self.show_message("Encounter completed. Add an addendum for anything later (Ctrl+Shift+A).")
        self.addendum.setFocus(Qt.FocusReason.OtherFocusReason)
        emit(self.saved, outcome.encounter)

    @Slot()
    def on_sign_requested(self) -> None:
        """Complete (when still a draft), sign the prescription with the doctor's key and print it: one step."""
        if self._encounter is None or self._busy or self._rx_signing is None:
            return
        if self._signed is not None and self._signed[1].ended:
            self.show_message(f"This prescription is {self._signed[1].status}: it is never printed again.", error=True)
            return
        completing = not self.is_completed
        if completing:
            self.pad.refresh_now()
            result = self.pad.result
            if result is not None and result.problems:
                self.show_message("Cannot sign: " + "; ".join(result.problems), error=True)
                return
        question = "Sign this prescription with your key and print it?"
        if completing:
            question += " The encounter is completed first: the note and the prescription cannot be changed afterwards."
        if not self._confirm(self, "Sign and print", question):
            return
        op = self._save_op() if completing else None
        if completing and op is None:
            return
        encounters, signer = self._encounters, self._rx_signing
        encounter_id, user_id = self._encounter.id, self._doctor.user_id

        def complete_sign_print() -> tuple[SaveOutcome | None, SignedPrint | None]:
            outcome = None
            if op is not None:
                outcome = op()
                if outcome.blocked is not None:
                    return outcome, None
                outcome = SaveOutcome(encounters.complete(encounter_id), outcome.prescription, None)
            return outcome, signer.sign_and_print(user_id, encounter_id)

        self._busy = True
        self._runner.run_op(self, complete_sign_print, self._on_signed, self._on_sign_failed)

    def _on_signed(self, done: tuple[SaveOutcome | None, SignedPrint | None]) -> None:
        self._busy = False
        outcome, printed = done
        if outcome is not None:
            self._encounter = outcome.encounter
            if outcome.blocked is not None:
                self.show_message("Not signed: " + "; ".join(outcome.blocked.problems), error=True)
                return
            self._show_saved_refusal(outcome)
            self._show_status(outcome.encounter)
            emit(self.saved, outcome.encounter)
        if printed is None:
            return
        when = printed.signed_at.astimezone().strftime("%d %b %Y %H:%M")
        verb = "Already signed" if printed.already_signed else "Signed"
        self.show_message(f"{verb} {when}. Prescription PDF: {printed.pdf}")
        self._open_file(printed.pdf)
        self.refresh_rx_status()

    # -- the signed prescription's status ---------------------------------------------------------------------

    def _status_line(self, name: str) -> QLabel:
        """A hidden, word-wrapped plain-text line over the Rx pad (status, refusal)."""
        label = QLabel("", self)
        label.setAccessibleName(name)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setWordWrap(True)
        label.setVisible(False)
        return label

    def refresh_rx_status(self) -> None:
        """Read the encounter's signed prescription and its status events, then show them."""
        if self._encounter is None or self._rx_status is None:
            return
        service, encounter_id = self._rx_status, self._encounter.id
        self._runner.run_query(self, lambda: service.for_encounter(encounter_id), self._show_rx_status, self._on_failed)

    def _show_rx_status(self, signed: tuple[SignedRecord, RxStatus] | None) -> None:
        self._signed = signed
        if signed is None:
            self.rx_status_label.setVisible(False)
            self.rx_refusal_label.setVisible(False)
            self.cancel_rx_button.setVisible(False)
            self.sign_button.setEnabled(True)
            self.sign_button.setToolTip(
                "Complete the encounter, sign the prescription with your key, print it with its QR"
            )
            return
        record, status = signed
        when = record.signed_at.astimezone().strftime("%d %b %Y %H:%M")
        text = f"Prescription signed {when}" if status.event is None else f"Prescription {status.label()}"
        color = ERROR_COLOR if status.ended else WARNING_COLOR if status.waiting else OK_COLOR
        self.rx_status_label.setText(text)
        self.rx_status_label.setToolTip(
            "; ".join(f"{e.status} refused by the server: {e.refusal}" for e in status.refused)
            or "Status events are signed and reach the server at the next sync"
        )
        border = f"border: 2px solid {color}; padding: 4px;" if status.ended else "padding: 2px;"
        self.rx_status_label.setStyleSheet(f"color: {color}; font-weight: 700; {border}")
        self.rx_status_label.setVisible(True)
        notice = self._show_rx_refusal(record, status)
        mine = record.signer_id == self._doctor.user_id
        pointless = notice is not None and notice.retry_refused  # another PC ended it, or out of this PC's scope
        self.cancel_rx_button.setVisible(mine and not status.ended and not pointless)
        again = bool(status.refused) and not status.ended  # a refused event does not count: he may cancel again
        self.cancel_rx_button.setText(f"Cancel {'again' if again else 'prescription'}… (Ctrl+Shift+C)")
        self.sign_button.setEnabled(not status.ended)
        if status.ended:
            self.sign_button.setToolTip(f"This prescription is {status.status}: it is never printed again")

    def _show_rx_refusal(self, record: SignedRecord, status: RxStatus) -> RefusalNotice | None:
        """The server's refusal of an event signed here, under the status: in red while it leaves the prescription
        valid on the server, quieter once a later event ended it. Returns the notice shown, if any."""
        notice = refusal_notice(status, viewer=self._doctor.user_id, prescriber=record.signer_id)
        if notice is None:
            self.rx_refusal_label.setVisible(False)
            self.rx_refusal_label.setText("")
            self.rx_refusal_label.setAccessibleDescription("")
            return None
        color = {"error": ERROR_COLOR, "warning": WARNING_COLOR, "info": MUTED_COLOR}[notice.severity]
        if notice.severity == "error":  # framed as the status of an ended prescription is: it needs the doctor
            frame = f"font-weight: 600; border: 2px solid {color}; padding: 4px;"
        else:
            frame = "padding: 2px;"
        self.rx_refusal_label.setStyleSheet(f"color: {color}; {frame}")
        if notice.severity == "error" and notice.text != self.rx_refusal_label.text():
            self.show_message(
                "The clinic server refused a cancellation: see the note over the prescription.", error=True
            )
        self.rx_refusal_label.setText(notice.text)
        self.rx_refusal_label.setAccessibleDescription(notice.text)  # the name says what it is; this, what it says
        self.rx_refusal_label.setVisible(True)
        return notice

    @Slot(object, bool)
    def on_sync_finished(self, _report: object, _user_started: bool) -> None:
        """After a sync round: the server's answer may have refused (or accepted) a status event signed here."""
        if self._signed is not None and not self._busy:
            self.refresh_rx_status()

    @Slot()
    def on_cancel_rx_requested(self) -> None:
        """Ctrl+Shift+C: the prescriber cancels his signed prescription, with a reason (signed offline)."""
        if self._busy or self._rx_status is None or self._signed is None:
            return
        record, status = self._signed
        if status.ended or record.signer_id != self._doctor.user_id:
            return
        what = f"of {record.signed_at.astimezone():%d %b %Y %H:%M}"
        reason = self._ask_cancel(self, what)
        if reason is None:
            return
        service, user_id, rx_id = self._rx_status, self._doctor.user_id, record.prescription_id
        self._busy = True
        self._runner.run_op(
            self, lambda: service.cancel(user_id, rx_id, reason), self._on_rx_cancelled, self._on_cancel_failed
        )

    def _on_rx_cancelled(self, status: RxStatus) -> None:
        self._busy = False
        if self._signed is not None:
            self._show_rx_status((self._signed[0], status))
        self.show_message("Prescription cancelled: it is never printed again. It reaches the server at the next sync.")

    def _on_cancel_failed(self, exc: BaseException) -> None:
        self._busy = False
        self.refresh_rx_status()
        self._on_failed(exc)

    def _on_sign_failed(self, exc: BaseException) -> None:
        # The encounter may have been completed before signing failed (e.g. the key is not certified yet):
        # reload its state so the screen shows what is stored, then show why signing did not happen.
        if self._encounter is not None:
            encounter_id = self._encounter.id
            encounters = self._encounters
            self._runner.run_op(self, lambda: encounters.get(encounter_id), self._reloaded, lambda _e: None)
        self._on_failed(exc)

    def _reloaded(self, encounter: Encounter) -> None:
        self._encounter = encounter
        self._show_status(encounter)

    @Slot()
    def on_addendum_requested(self) -> None:
        if self._encounter is None or not self.is_completed or self._busy:
            return
        text = self.addendum.toPlainText()
        if not text.strip():
            self.addendum.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.show_message("Type the addendum first.", error=True)
            return
        encounters, encounter_id, author = self._encounters, self._encounter.id, self._doctor.user_id

        def add() -> Encounter:
            encounters.add_addendum(encounter_id, {"text": text}, author)
            return encounters.get(encounter_id)

        self._busy = True
        self._runner.run_op(self, add, self._on_addendum_added, self._on_failed)

    def _on_addendum_added(self, encounter: Encounter) -> None:
        self._busy = False
        self._encounter = encounter
        self.addendum.clear()
        self._show_status(encounter)
        self.show_message("Addendum added.")

    @Slot(object)
    def on_pad_override_requested(self, alert: Any) -> None:
        if self._encounter is None or self.is_completed:
            return
        reason = self._ask_reason(self, alert)
        if reason is None:
            return
        rx, encounter_id, user_id, lines = self._prescribing, self._encounter.id, self._doctor.user_id, self.pad.lines()
        self._runner.run_op(
            self,
            lambda: rx.record_override(encounter_id, alert, reason, user_id, lines),
            lambda record: self._on_override_recorded(record.alert_key, record.reason),
            self._on_failed,
        )

    @Slot(object)
    def on_pad_earlier_toggle_requested(self, condition: EarlierCondition) -> None:
        """Exclude an earlier condition from this prescription's checks (asking why), or include it again."""
        if self._encounter is None or self.is_completed:
            return
        service, encounter_id, user_id = self._prescribing.patient_conditions, self._encounter.id, self._doctor.user_id
        if condition.is_excluded:
            op: Callable[[], EarlierConditions] = lambda: service.include(encounter_id, condition, user_id)  # noqa: E731
            said = f"{condition.label} is checked again for this prescription."
        else:
            reason = self._ask_exclusion(self, condition)
            if reason is None:
                return
            op = lambda: service.exclude(encounter_id, condition, reason, user_id)  # noqa: E731
            said = f"{condition.label} left out of this prescription's checks; your reason is recorded."
        self._runner.run_op(self, op, lambda earlier: self._on_earlier_changed(earlier, said), self._on_failed)

    def _on_earlier_changed(self, earlier: EarlierConditions, said: str) -> None:
        self.pad.earlier.show_conditions(earlier)
        self.pad.set_conditions(self._checked_conditions())
        self.pad.earlier.list.setFocus(Qt.FocusReason.OtherFocusReason)
        self.show_message(said)

    def _on_override_recorded(self, key: str, reason: str) -> None:
        self.pad.add_override(key, reason)
        self.pad.majors.setFocus(Qt.FocusReason.OtherFocusReason)
        self.show_message("Override recorded with your reason.")

    @Slot()
    def on_close_requested(self) -> None:
        """Close; a draft is saved first, so nothing typed is lost (implausible vitals keep it open)."""
        if self._encounter is not None and not self.is_completed:
            op = self._save_op()
            if op is None:
                return  # busy, or the vitals message is shown
            self._busy = True
            self._runner.run_op(self, op, self._after_close_save, self._on_failed)
            return
        self._finish_close()

    def _after_close_save(self, outcome: SaveOutcome) -> None:
        self._on_saved(outcome)
        self._finish_close()

    def _finish_close(self) -> None:
        self._encounters.set_in_chair(None)
        emit(self.closed)

    def _on_failed(self, exc: BaseException) -> None:
        self._busy = False
        if isinstance(exc, RuleViolation):
            self.show_message("Not saved: " + "; ".join(f"{p.field}: {p.message}" for p in exc.problems), error=True)
        elif isinstance(exc, DomainError):
            self.show_message(exc.message, error=True)
        else:
            self._present_error(self, exc)
