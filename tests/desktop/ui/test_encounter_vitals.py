"""Encounter screen vitals: an implausible BP pair is refused inline; a critical but real one is accepted,
flagged in amber next to the field and saved as typed (real SQLite, real widgets offscreen, keyboard)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.desktop.ui.encounter_harness import Harness
from tests.desktop.ui.keyboard import press, type_text
from tests.desktop.ui.render import render_png


def test_implausible_pair_is_refused_inline_and_nothing_saved(qtbot: QtBot, harness: Harness) -> None:
    screen = harness.screen()
    screen.vitals["bp"].setFocus()
    type_text(qtbot, "300/20", screen.vitals["bp"])
    press(qtbot, Qt.Key.Key_Tab)
    error = screen.vital_errors["bp"]
    qtbot.waitUntil(error.isVisible, timeout=20_000)
    assert error.text() == (
        "300/20: a gap of 280 mmHg between systolic and diastolic is not plausible (pulse pressure 10-200 mmHg): "
        "check both numbers"
    )
    assert not screen.vital_flags["bp"].isVisible()
    screen.subjective.setPlainText("Headache")
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    assert "fix the vitals" in screen.message.text()
    assert harness.encounters.get(screen.encounter.id).soap_note is None  # type: ignore[union-attr]


def test_critical_values_are_flagged_saved_and_flagged_again_on_reopen(
    qtbot: QtBot,
    harness: Harness,
    artifacts_dir: Path,
    ui_app: QApplication,
) -> None:
    screen = harness.screen()
    for name, text in (("bp", "220/130"), ("pulse", "136"), ("spo2", "89"), ("weight_kg", "64")):
        screen.vitals[name].setFocus()
        type_text(qtbot, text, screen.vitals[name])
        press(qtbot, Qt.Key.Key_Tab)
    flag = screen.vital_flags["bp"]
    qtbot.waitUntil(flag.isVisible, timeout=20_000)
    assert not screen.vital_errors["bp"].isVisible()
    assert flag.text().splitlines() == ["Critical: Systolic pressure 220 mmHg", "Critical: Diastolic pressure 130 mmHg"]
    assert flag.toolTip().splitlines()[0] == (
        "Critical: Systolic pressure 220 mmHg — severe hypertension (over 180 mmHg); a hypertensive crisis if "
        "there is new organ damage"
    )
    assert flag.accessibleDescription() == flag.toolTip()
    assert screen.vital_flags["pulse"].toolTip() == (
        "Critical: Pulse 136 beats/min — 131/min or more is a NEWS2 red score: review urgently"
    )
    assert screen.vital_flags["spo2"].isVisible() and not screen.vital_flags["weight_kg"].isVisible()
    screen.subjective.setPlainText("Severe headache since morning, blurred vision.")
    render_png(artifacts_dir / "ui_encounter_vitals_critical.png", screen)
    press(qtbot, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    harness.settle()
    stored = harness.encounters.get(screen.encounter.id)  # type: ignore[union-attr]
    assert stored.soap_note is not None and stored.soap_note.objective is not None
    vitals = stored.soap_note.objective.vitals
    assert vitals is not None and (vitals.bp, vitals.pulse, vitals.spo2) == ("220/130", 136, 89)
    screen.vitals["bp"].clear()
    screen.check_vital("bp")
    assert not flag.isVisible()
    screen.open_encounter(stored.id, harness.patient)  # reopened: the stored values are flagged again
    qtbot.waitUntil(lambda: screen.vitals["bp"].text() == "220/130" and flag.isVisible(), timeout=20_000)
    assert flag.text().startswith("Critical: Systolic pressure 220 mmHg")
