"""Cancel a signed prescription from the encounter screen (Ctrl+Shift+C), offline; it shows CANCELLED and is
never printed again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop.services.rx_signing import RxSigningService
from desktop.services.rx_status import RxStatusService
from desktop.ui.screens.encounter import EncounterScreen, ask_cancel_reason
from desktop.ui.widgets.reason_dialog import ReasonDialog
from shared.signing.testing import make_test_chain
from shared.sync.protocol import RecordKind
from tests.desktop.ui.encounter_harness import MBBS, Harness, doctor, signing_for
from tests.desktop.ui.keyboard import activate, press, type_text
from tests.desktop.ui.render import render_png


@pytest.mark.expect_log_warnings  # the test PC has no OS keyring: the signing key goes to the data folder's file
def test_ctrl_shift_c_cancels_the_signed_prescription_with_a_reason_and_it_is_never_printed_again(
    qtbot: QtBot, harness: Harness, presenter: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    signing = signing_for(tmp_path, make_test_chain())
    opened: list[Path] = []
    asked: list[str] = []

    def ask(_parent: QWidget, what: str) -> str | None:
        asked.append(what)
        return "Wrong dose printed; re-issued on a new visit"

    status = RxStatusService(harness.store.uow, signing, clock=harness.store.clock)
    screen = EncounterScreen(
        harness.runner, harness.encounters, harness.rx, doctor(MBBS),
        confirm=lambda _p, _t, _x: True, ask_cancel=ask,
        rx_signing=RxSigningService(harness.store.uow, signing, tmp_path), rx_status=status,
        open_file=opened.append, error_presenter=presenter,
    )  # fmt: skip
    qtbot.addWidget(screen)
    screen.resize(1366, 768)
    activate(qtbot, screen)
    screen.start_new(harness.patient, "Tiredness and thirst")
    qtbot.waitUntil(lambda: screen.encounter is not None and screen.pad.result is not None)
    assert not screen.cancel_rx_button.isVisible()  # nothing signed yet
    screen.pad.focus_line(0)
    type_text(qtbot, "Metf 1000 bd 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(opened) and screen.cancel_rx_button.isVisible(), timeout=20_000)
    assert screen.rx_status_label.text().startswith("Prescription signed ")
    render_png(artifacts_dir / "ui_encounter_rx_signed_cancel_action.png", screen)

    press(qtbot, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: "CANCELLED" in screen.rx_status_label.text(), timeout=20_000)
    harness.settle()
    assert presenter.shown == []
    assert asked and asked[0].startswith("of ")
    label = screen.rx_status_label.text()
    assert "Wrong dose printed; re-issued on a new visit" in label and "(waiting to sync)" in label
    assert not screen.cancel_rx_button.isVisible() and not screen.sign_button.isEnabled()
    assert "never printed again" in screen.message.text()
    render_png(artifacts_dir / "ui_encounter_rx_cancelled.png", screen)
    with harness.store.uow.read() as uow:
        queued = [e for e in uow.outbox.peek_unsent(100) if e.kind == RecordKind.PRESCRIPTION_STATUS]
    assert len(queued) == 1

    press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)  # the shortcut too: no second print
    assert "never printed again" in screen.message.text() and len(opened) == 1
    press(qtbot, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    harness.settle()
    assert len(asked) == 1  # nothing to cancel any more

    # Opened again later (another session), the status is read back from the store.
    screen.open_encounter(screen.encounter.id, harness.patient)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: "CANCELLED" in screen.rx_status_label.text(), timeout=20_000)


def test_the_cancel_dialog_is_keyboard_only_and_needs_a_reason(qtbot: QtBot) -> None:
    seen: list[bool] = []
    parent = QWidget()
    qtbot.addWidget(parent)
    activate(qtbot, parent)

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ReasonDialog):
            QTimer.singleShot(10, fill)  # not shown yet
            return
        seen.append(dialog.ok_button.isEnabled())  # no reason yet: False
        type_text(qtbot, "Printed for the wrong patient", dialog.reason)
        seen.append(dialog.ok_button.isEnabled())
        press(qtbot, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)

    QTimer.singleShot(0, fill)
    assert ask_cancel_reason(parent, "of 26 Nov 2026 10:00") == "Printed for the wrong patient"
    assert seen == [False, True]
