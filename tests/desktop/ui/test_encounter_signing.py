"""Sign & print from the encounter screen (Ctrl+P): completes, signs offline, prints the PDF with the QR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from desktop.services.rx_signing import RxSigningService
from desktop.services.signing import SigningService
from desktop.ui.screens.encounter import EncounterScreen
from shared.records.encounter import EncounterStatus
from shared.signing.rx import verify_qr_payload
from shared.signing.testing import make_test_chain
from tests.desktop.ui.encounter_harness import MBBS, Harness, doctor, signing_for
from tests.desktop.ui.keyboard import activate, press, type_text
from tests.desktop.ui.render import render_png


def screen_with_signing(
    harness: Harness, signing: SigningService, data_dir: Path, opened: list[Path], presenter: Any
) -> EncounterScreen:
    def confirm(_parent: QWidget, _title: str, text: str) -> bool:
        harness.confirmations.append(text)
        return True

    screen = EncounterScreen(
        harness.runner,
        harness.encounters,
        harness.rx,
        doctor(MBBS),
        confirm=confirm,
        rx_signing=RxSigningService(harness.store.uow, signing, data_dir),
        open_file=opened.append,
        error_presenter=presenter,
    )
    harness.qtbot.addWidget(screen)
    screen.resize(1366, 768)
    activate(harness.qtbot, screen)
    screen.start_new(harness.patient, "Tiredness and thirst")
    harness.qtbot.waitUntil(lambda: screen.encounter is not None and screen.pad.result is not None)
    return screen


# The test PCs have no OS keyring: the signing key goes to the data folder's file, which the store warns about.
@pytest.mark.expect_log_warnings
def test_ctrl_p_completes_signs_and_prints(
    qtbot: QtBot, harness: Harness, presenter: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    chain = make_test_chain()
    opened: list[Path] = []
    screen = screen_with_signing(harness, signing_for(tmp_path, chain), tmp_path, opened, presenter)
    screen.pad.focus_line(0)
    type_text(qtbot, "Metf 1000 bd 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(opened), timeout=20_000)
    harness.settle()
    assert presenter.shown == []
    assert opened[0].suffix == ".pdf" and opened[0].is_file()
    assert "completed first" in harness.confirmations[0]
    encounter = harness.encounters.get(screen.encounter.id)  # type: ignore[union-attr]
    assert encounter.status == EncounterStatus.COMPLETED
    signed = RxSigningService(harness.store.uow, signing_for(tmp_path, chain), tmp_path).signed(encounter.id)
    assert signed is not None and verify_qr_payload(signed.qr_payload, chain.trust).valid
    assert screen.message.text().startswith("Signed ") and str(opened[0]) in screen.message.text()
    render_png(artifacts_dir / "ui_encounter_signed.png", screen)
    # Ctrl+P again reprints the same signature; nothing is signed twice.
    press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(opened) == 2, timeout=20_000)
    assert screen.message.text().startswith("Already signed ")


@pytest.mark.expect_log_warnings
@pytest.mark.expect_presented_errors  # why it cannot sign
def test_an_uncertified_pc_completes_but_says_why_it_cannot_sign(
    qtbot: QtBot, harness: Harness, presenter: Any, tmp_path: Path
) -> None:
    opened: list[Path] = []
    signing = signing_for(tmp_path, make_test_chain(), certified=False)
    screen = screen_with_signing(harness, signing, tmp_path, opened, presenter)
    screen.pad.focus_line(0)
    type_text(qtbot, "Metf 1000 bd 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(presenter.shown), timeout=20_000)
    harness.settle()
    assert not opened
    assert "not been certified" in str(presenter.shown[0])
    qtbot.waitUntil(lambda: screen.is_completed, timeout=20_000)
