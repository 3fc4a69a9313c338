"""The Rx pad with synced drafts: the clinic server's refusal shown until the next save, and a prescription
without typed lines (a REST draft) written out into the pad. Real SQLite store, real widgets (offscreen)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop.services.prescribing import prescriber_for
from desktop.store import LocalStore
from desktop.store.prescriptions import PrescriptionRepository, pad_lines
from desktop.ui.screens.encounter import EncounterScreen
from desktop.ui.screens.rx_pad import refusal_text
from desktop.ui.style import ERROR_COLOR
from shared.records.encounter import SoapNote
from tests.desktop.ui.encounter_harness import MBBS, Harness, doctor
from tests.desktop.ui.keyboard import activate, press, type_text
from tests.desktop.ui.render import render_png

# As the sync server words a refusal of a pushed draft (`sync_server.services.rx_sync._Refused`): here the merged
# draft on the server also holds clarithromycin from another PC.
REFUSAL = {
    "reason": "invalid_record",
    "message": "rx.contraindicated: Contraindicated: COLCHICINE + CLARITHROMYCIN. Change the prescription; this cannot "
    "be overridden. (rule DDI-018)",
    "hlc": "0000019ab0000000-0000-0000000000000001",
}


def _note_refusal(store: LocalStore, prescription_id: uuid.UUID, refusal: dict[str, Any]) -> None:
    """Record the server's refusal as the push answer does (`desktop.sync.apply_prescriptions.note_refused_drafts`)."""

    def write() -> None:
        with store.uow.write() as uow:
            assert PrescriptionRepository(uow.connection).set_sync_refusal(prescription_id, refusal)
            uow.commit()

    store.writer.run(write)


def _open(harness: Harness, encounter_id: uuid.UUID) -> EncounterScreen:
    def confirm(_parent: QWidget, _title: str, _text: str) -> bool:
        return True

    screen = EncounterScreen(harness.runner, harness.encounters, harness.rx, doctor(MBBS), confirm=confirm)
    harness.qtbot.addWidget(screen)
    screen.resize(1366, 768)
    activate(harness.qtbot, screen)
    screen.open_encounter(encounter_id, harness.patient)
    harness.qtbot.waitUntil(lambda: screen.encounter is not None and screen.pad.result is not None, timeout=20_000)
    return screen


def test_refusal_words_drop_the_problem_code_and_keep_the_rule() -> None:
    assert refusal_text(REFUSAL) == (
        "The clinic server refused this prescription: Contraindicated: COLCHICINE + CLARITHROMYCIN. Change the "
        "prescription; this cannot be overridden. (rule DDI-018). It is saved on this PC; change it and save again."
    )
    said = refusal_text({"reason": "invalid_record", "message": "rx.not_permitted: METFORMIN is not allowed."})
    assert said.startswith("The clinic server refused this prescription: METFORMIN is not allowed. It is saved")


def test_server_refusal_shows_in_the_pad_until_the_next_save(
    qtbot: QtBot, harness: Harness, artifacts_dir: Path, ui_app: QApplication
) -> None:
    screen = harness.screen()
    assert not screen.pad.sync_refusal.isVisible()
    screen.pad.focus_line(0)
    type_text(qtbot, "colchicine 0.5 bd x 7d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    encounter_id = screen.encounter.id  # type: ignore[union-attr]
    saved = harness.rx.saved(encounter_id)
    assert saved is not None
    _note_refusal(harness.store, saved.id, REFUSAL)
    assert harness.rx.sync_refusal(encounter_id) == REFUSAL

    screen.open_encounter(encounter_id)  # the refusal is read with the encounter, off the GUI thread
    banner = screen.pad.sync_refusal
    qtbot.waitUntil(banner.isVisible, timeout=20_000)
    expected = refusal_text(REFUSAL)
    assert banner.text() == expected and banner.accessibleDescription() == expected
    assert "(rule DDI-018)" in banner.text() and "saved on this PC" in banner.text()
    assert ERROR_COLOR in banner.styleSheet()
    assert banner.focusPolicy() == Qt.FocusPolicy.NoFocus  # the Tab order is unchanged
    assert screen.pad.rows[0].edit.text() == "colchicine 0.5 bd x 7d"  # the draft stays as the doctor saved it
    screen.pad.resize(780, 520)
    render_png(artifacts_dir / "ui_rx_pad_sync_refusal.png", None, screen.pad)

    screen.pad.focus_line(0)
    screen.pad.rows[0].edit.selectAll()
    type_text(qtbot, "colchicine 0.5 od x 7d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    assert "Draft saved" in screen.message.text(), screen.message.text()
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=20_000)
    assert harness.rx.sync_refusal(encounter_id) is None
    screen.open_encounter(encounter_id)  # and a reload does not bring it back
    qtbot.waitUntil(lambda: screen.pad.rows[0].edit.text() == "colchicine 0.5 od x 7d", timeout=20_000)
    harness.settle()
    assert not banner.isVisible() and banner.text() == ""


def test_blocked_save_keeps_the_refusal_shown(qtbot: QtBot, harness: Harness) -> None:
    screen = harness.screen()
    screen.pad.focus_line(0)
    type_text(qtbot, "metf 500 bd x 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    encounter_id = screen.encounter.id  # type: ignore[union-attr]
    saved = harness.rx.saved(encounter_id)
    assert saved is not None
    _note_refusal(harness.store, saved.id, REFUSAL)
    screen.open_encounter(encounter_id)
    qtbot.waitUntil(screen.pad.sync_refusal.isVisible, timeout=20_000)
    screen.pad.focus_line(0)
    screen.pad.rows[0].edit.selectAll()
    type_text(qtbot, "metf 500 bd zork 30d", screen.pad.rows[0].edit)  # an unknown token: the Rx is not saved
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    assert "Prescription NOT saved" in screen.message.text()
    assert screen.pad.sync_refusal.isVisible() and harness.rx.sync_refusal(encounter_id) == REFUSAL


def test_prescription_without_typed_lines_fills_the_pad_written_out(qtbot: QtBot, harness: Harness) -> None:
    clinician = doctor(MBBS)
    encounter = harness.encounters.start(
        {"patient_id": str(harness.patient.id), "encounter_type": "opd", "start_time": datetime.now(UTC),
         "chief_complaint": "Diabetes review"},
        clinician.user_id,
    )  # fmt: skip
    saved = harness.rx.save(
        encounter.id,
        ["metf 500 bd x 30d", "amlo 5 0-0-1 x 1m"],
        prescriber_for(MBBS, "doctor", "opd"),
        clinician.user_id,
    )
    assert saved is not None

    def as_rest_draft() -> None:  # no typed lines: each medicine written out, as a pulled REST draft is stored
        with harness.store.uow.write() as uow:
            repo = PrescriptionRepository(uow.connection)
            lines = pad_lines(
                {"lines": None, "medications": saved.medications, "ayush_medications": saved.ayush_medications}
            )
            repo.update(saved.id, {"lines": lines})
            uow.commit()

    harness.store.writer.run(as_rest_draft)
    written = [line["text"] for line in harness.rx.saved(encounter.id).lines]  # type: ignore[union-attr]
    assert written[0] == "METFORMIN 500mg Twice daily x 30d" and written[1].startswith("AMLODIPINE 5mg")
    assert harness.encounters.get(encounter.id).soap_note is None  # the note has no typed Rx lines

    screen = _open(harness, encounter.id)
    assert screen.pad.lines() == written
    assert "<b>METFORMIN</b>" in screen.pad.rows[0].expansion.text()  # checked like typed lines
    assert "<b>AMLODIPINE</b>" in screen.pad.rows[1].expansion.text()
    assert screen.pad.rows[0].edit.marks == () and screen.pad.rows[1].edit.marks == ()
    assert not screen.pad.sync_refusal.isVisible()

    screen.pad.focus_line(0)  # the doctor can edit them, and a save keeps them in the note
    screen.pad.rows[0].edit.selectAll()
    type_text(qtbot, "METFORMIN 1000mg Twice daily x 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    note = harness.encounters.get(encounter.id).soap_note
    assert isinstance(note, SoapNote) and note.plan is not None
    assert note.plan.medications == ["METFORMIN 1000mg Twice daily x 30d", written[1]]
    stored = harness.rx.saved(encounter.id)
    assert stored is not None and stored.medications[0]["strength"] == "1000mg"


def test_typed_lines_in_the_note_win_over_the_saved_lines(qtbot: QtBot, harness: Harness) -> None:
    screen = harness.screen()
    screen.pad.focus_line(0)
    type_text(qtbot, "metf 500 bd x 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    encounter_id = screen.encounter.id  # type: ignore[union-attr]
    again = _open(harness, encounter_id)
    assert again.pad.lines() == ["metf 500 bd x 30d"]  # as typed, not "METFORMIN 500mg …"
