"""Rx pad: conditions from the patient's earlier visits are listed "from an earlier visit" with the alerts they
fire, and one can be excluded for this prescription by keyboard (Ctrl+Shift+X, typed reason, audited)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop.services.patient_conditions import EXCLUDED_RULE, EarlierCondition
from desktop.ui.screens.encounter import EncounterScreen
from desktop.ui.widgets.earlier_conditions import ExcludeConditionDialog
from tests.desktop.ui.encounter_harness import MBBS, Harness, doctor
from tests.desktop.ui.keyboard import activate, focused, press, type_text
from tests.desktop.ui.render import render_png

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")


def _earlier_visit(harness: Harness) -> None:
    enc = harness.encounters.start(
        {"patient_id": str(harness.patient.id), "encounter_type": "opd",
         "start_time": datetime(2026, 9, 14, 10, tzinfo=UTC), "chief_complaint": "Missed period"},
        DOCTOR,
    )  # fmt: skip
    note = {
        "assessment": {
            "primary_diagnosis": {"condition": "Pregnancy", "code": "77386006"},
            "secondary_diagnoses": [{"condition": "Chronic kidney disease", "code": "N18"}],
        }
    }
    harness.encounters.save_draft(enc.id, {"soap_note": note})
    harness.encounters.complete(enc.id)


def _screen(harness: Harness, reasons: list[str | None], asked: list[EarlierCondition]) -> EncounterScreen:
    def ask(_parent: QWidget, condition: EarlierCondition) -> str | None:
        asked.append(condition)
        return reasons.pop(0)

    screen = EncounterScreen(harness.runner, harness.encounters, harness.rx, doctor(MBBS), ask_exclusion=ask)
    harness.qtbot.addWidget(screen)
    screen.resize(1366, 768)
    activate(harness.qtbot, screen)
    screen.start_new(harness.patient, "Swelling of feet")
    harness.qtbot.waitUntil(lambda: screen.encounter is not None and screen.pad.result is not None, timeout=20_000)
    return screen


def test_earlier_pregnancy_fires_and_is_excluded_by_keyboard(
    qtbot: QtBot,
    harness: Harness,
    artifacts_dir: Path,
    ui_app: QApplication,
) -> None:
    _earlier_visit(harness)
    asked: list[EarlierCondition] = []
    screen = _screen(harness, [None, "Delivered 2 Nov 2026; not breastfeeding"], asked)
    panel = screen.pad.earlier
    assert panel.isVisible() and panel.list.count() == 2
    screen.pad.focus_line(0)
    type_text(qtbot, "warfarin 5 od x 30d", screen.pad.rows[0].edit)
    screen.pad.refresh_now()
    stops = screen.pad.hard_stops.text()
    assert "DCI-009 contraindicated: WARFARIN + Pregnancy — Pregnancy: from an earlier visit (14 Sep 2026)" in stops
    first = panel.list.item(0).text()
    assert first.startswith("• Pregnancy (SNOMED 77386006) — primary diagnosis 14 Sep 2026")
    assert "fires DCI-009 (contraindicated)" in first
    assert "no alert now" in panel.list.item(1).text()
    render_png(artifacts_dir / "ui_rx_pad_earlier_conditions.png", screen)

    # Ctrl+Shift+X from the line being typed: the first (selected) condition; Esc in the dialog changes nothing.
    press(qtbot, Qt.Key.Key_X, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert [c.label for c in asked] == ["Pregnancy"]
    assert screen.pad.result is not None and screen.pad.result.by_tier("hard_stop")
    press(qtbot, Qt.Key.Key_X, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    harness.settle()
    qtbot.waitUntil(lambda: "EXCLUDED" in panel.list.item(0).text(), timeout=20_000)
    assert panel.list.item(0).text() == (
        "✗ Pregnancy (SNOMED 77386006), 14 Sep 2026 — EXCLUDED: “Delivered 2 Nov 2026; not breastfeeding”"
    )
    assert screen.pad.result is not None and not screen.pad.result.by_tier("hard_stop")
    assert not screen.pad.hard_stops.isVisible()
    assert "recorded" in screen.message.text()
    (audit,) = [o for o in harness.rx.overrides(screen.encounter.id) if o.rule_id == EXCLUDED_RULE]  # type: ignore[union-attr]
    assert audit.reason == "Delivered 2 Nov 2026; not breastfeeding" and audit.user_id == DOCTOR
    render_png(artifacts_dir / "ui_rx_pad_earlier_condition_excluded.png", screen)

    # The save re-check agrees with the pad; reopening the encounter shows the exclusion again.
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    saved = harness.rx.saved(screen.encounter.id)  # type: ignore[union-attr]
    assert saved is not None and [m["generic_name"] for m in saved.medications] == ["WARFARIN"]
    screen.open_encounter(screen.encounter.id)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: panel.list.count() == 2 and "EXCLUDED" in panel.list.item(0).text(), timeout=20_000)
    harness.settle()  # the reopened encounter's own loads and checks are done: nothing moves the focus after this

    # Enter on an excluded row checks it again (recorded too), and the hard stop is back.
    panel.list.setFocus()
    panel.list.setCurrentRow(0)
    QTest.keyClick(focused(qtbot, panel.list), Qt.Key.Key_Return)
    harness.settle()
    qtbot.waitUntil(lambda: "EXCLUDED" not in panel.list.item(0).text(), timeout=20_000)
    assert screen.pad.result is not None and screen.pad.result.by_tier("hard_stop")


def test_exclusion_dialog_needs_a_reason(qtbot: QtBot, ui_app: QApplication, artifacts_dir: Path) -> None:
    condition = EarlierCondition(
        key="SNOMED:77386006", label="Pregnancy", code="77386006", system="snomed",
        encounter_id=uuid.uuid4(), seen_on=datetime(2026, 9, 14).date(), primary=True,
    )  # fmt: skip
    dialog = ExcludeConditionDialog(condition)
    qtbot.addWidget(dialog)
    assert not dialog.ok_button.isEnabled()
    dialog.reason.setPlainText("no")
    assert not dialog.ok_button.isEnabled()
    dialog.reason.setPlainText("Delivered 2 Nov 2026")
    assert dialog.ok_button.isEnabled() and dialog.reason_text() == "Delivered 2 Nov 2026"
    render_png(artifacts_dir / "ui_rx_exclude_condition_dialog.png", None, dialog)
