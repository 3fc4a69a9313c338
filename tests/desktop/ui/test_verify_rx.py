"""The Verify prescription dialog: a real signed prescription, printed to PDF, read back and checked off-thread."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.printing.model import PrintablePrescription
from desktop.printing.prescription_pdf import render_prescription_pdf
from desktop.ui.runner import Runner
from desktop.ui.screens.verify_rx import Checked, KnownStatus, VerifyPrescriptionDialog, data_dir_trust
from shared.signing import keys
from shared.signing.certs import parse_certificate
from shared.signing.revocation import RevocationList
from shared.signing.rx import SignedPrescription, Verification
from shared.signing.standing import apply_standing
from shared.signing.status import StatusEvent, read_event, sign_event
from shared.signing.testing import TestChain, make_test_chain, sample_content
from shared.signing.trust import TrustStore
from tests.desktop.ui.conftest import ARTIFACTS_DIR
from tests.desktop.ui.render import render_png


@pytest.fixture
def chain() -> TestChain:
    return make_test_chain()


@pytest.fixture
def signed(chain: TestChain) -> SignedPrescription:
    return chain.sign(sample_content())


@pytest.fixture
def runner(ui_app: QApplication) -> Iterator[Runner]:
    writer = ThreadPoolExecutor(max_workers=1)
    runner = Runner(writer)
    yield runner
    runner.shutdown()
    writer.shutdown()


def _dialog(
    qtbot: QtBot, runner: Runner, trust: TrustStore, path: Path | None = None, known_status: KnownStatus | None = None
) -> VerifyPrescriptionDialog:
    lists: list[RevocationList] = []
    dialog = VerifyPrescriptionDialog(
        runner, lambda: (trust, lists), known_status=known_status, choose_file=lambda _parent: str(path)
    )
    qtbot.add_widget(dialog)
    dialog.resize(900, 700)
    dialog.show()
    return dialog


def paste_and_check(qtbot: QtBot, dialog: VerifyPrescriptionDialog, text: str) -> Checked:
    """Type the QR text, press Enter, wait for the answer."""
    qtbot.keyClicks(dialog.text_edit, text)
    with qtbot.wait_signal(dialog.checked, timeout=20000) as blocker:
        qtbot.keyClick(dialog.text_edit, Qt.Key.Key_Return)
    checked: Checked = blocker.args[0]
    return checked


def this_pc_knows(chain: TestChain, signed: SignedPrescription, status: str, reason: str) -> KnownStatus:
    """What the app passes, over a PC that holds one signed status event of the prescription (signed bytes, read
    back as the store reads them)."""
    at = signed.content.issued_at + timedelta(minutes=20)
    kid = keys.key_id(chain.doctor_key)
    event = StatusEvent(signed.content.rx_id, signed.content_hash, 1, status, reason, at, kid)  # type: ignore[arg-type]
    stored = read_event(sign_event(event, chain.doctor_key))

    def known_status(result: Verification) -> tuple[Verification, str | None]:
        return apply_standing(result, [stored], known_from="this PC"), None

    return known_status


def _printed(tmp_path: Path, chain: TestChain, signed: SignedPrescription) -> Path:
    claims = parse_certificate(chain.doctor_cert).claims
    rx = PrintablePrescription.from_signed(signed.content, claims, signed.content_hash, signed.qr_payload, True)
    path = tmp_path / "rx.pdf"
    path.write_bytes(render_prescription_pdf(rx, "A5"))
    return path


def test_a_printed_pdf_opened_with_ctrl_o_is_valid(
    qtbot: QtBot, runner: Runner, chain: TestChain, signed: SignedPrescription, tmp_path: Path
) -> None:
    dialog = _dialog(qtbot, runner, chain.trust, _printed(tmp_path, chain, signed))
    with qtbot.wait_signal(dialog.checked, timeout=20000) as blocker:
        qtbot.keyClick(dialog, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    checked: Checked = blocker.args[0]
    assert checked.result.valid and checked.result.sandbox
    assert checked.result.content == signed.content
    assert dialog.banner.text().startswith("VALID")
    assert "METFORMIN 1000 mg tablet" in dialog.details.toPlainText()
    assert "सुनीता देवी शर्मा" in dialog.details.toPlainText()
    assert dialog.verify_button.isEnabled() and not dialog.progress.isVisible()
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    render_png(ARTIFACTS_DIR / "verify_rx_valid.png", None, dialog)


def test_a_damaged_payload_pasted_is_invalid_with_the_reason(
    qtbot: QtBot, runner: Runner, chain: TestChain, signed: SignedPrescription
) -> None:
    payload = signed.qr_payload
    middle = len(payload) // 2
    damaged = payload[:middle] + ("A" if payload[middle] != "A" else "B") + payload[middle + 1 :]
    dialog = _dialog(qtbot, runner, chain.trust)
    checked = paste_and_check(qtbot, dialog, damaged)
    assert not checked.result.valid
    assert dialog.banner.text() == "INVALID"
    assert checked.result.reason.value in dialog.reason.text()
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    render_png(ARTIFACTS_DIR / "verify_rx_invalid.png", None, dialog)


def test_a_prescription_cancelled_on_this_pc_is_invalid_with_the_date_and_reason(
    qtbot: QtBot, runner: Runner, chain: TestChain, signed: SignedPrescription
) -> None:
    """The QR itself still verifies; what this PC holds (a signed cancellation) makes it INVALID."""
    dialog = _dialog(qtbot, runner, chain.trust, known_status=this_pc_knows(chain, signed, "cancelled", "Wrong dose"))
    checked = paste_and_check(qtbot, dialog, signed.qr_payload)
    assert not checked.result.valid and checked.result.reason.value == "cancelled"
    assert dialog.banner.text() == "INVALID \u2014 CANCELLED, do not dispense"
    assert "cancelled by the prescriber on" in dialog.reason.text() and "(Wrong dose)" in dialog.reason.text()
    details = dialog.details.toPlainText()
    assert "CANCELLED" in details and "recorded on this PC" in details
    assert "METFORMIN 1000 mg tablet" in details  # what was cancelled is still shown
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    render_png(ARTIFACTS_DIR / "verify_rx_cancelled.png", None, dialog)


def test_a_dispensed_prescription_is_valid_with_an_already_dispensed_banner(
    qtbot: QtBot, runner: Runner, chain: TestChain, signed: SignedPrescription
) -> None:
    dialog = _dialog(qtbot, runner, chain.trust, known_status=this_pc_knows(chain, signed, "dispensed", "Counter 2"))
    assert paste_and_check(qtbot, dialog, signed.qr_payload).result.valid
    assert dialog.banner.text() == "VALID \u2014 ALREADY DISPENSED, do not dispense again"
    assert "already dispensed on" in dialog.details.toPlainText()


def test_a_store_that_cannot_be_read_is_said_under_the_offline_answer(
    qtbot: QtBot, runner: Runner, chain: TestChain, signed: SignedPrescription
) -> None:
    dialog = _dialog(qtbot, runner, chain.trust, known_status=lambda r: (r, "this PC's records could not be read"))
    paste_and_check(qtbot, dialog, signed.qr_payload)
    assert dialog.banner.text().startswith("VALID")
    assert "this PC's records could not be read" in dialog.details.toPlainText()


def test_an_image_without_a_qr_says_so(qtbot: QtBot, runner: Runner, chain: TestChain, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    dialog = _dialog(qtbot, runner, chain.trust, blank)
    with qtbot.wait_signal(dialog.failed, timeout=20000) as blocker:
        dialog.open_button.click()
    assert "no QR code found in blank.png" in blocker.args[0]
    assert dialog.banner.text() == "NO QR CODE READ"


def test_a_new_check_clears_the_previous_verdict(
    qtbot: QtBot, runner: Runner, chain: TestChain, signed: SignedPrescription
) -> None:
    dialog = _dialog(qtbot, runner, chain.trust)
    dialog.text_edit.setText(signed.qr_payload)
    with qtbot.wait_signal(dialog.checked, timeout=20000):
        dialog.verify_button.click()
    assert dialog.banner.isVisible()
    dialog.start(signed.qr_payload[:-5], "Checking\u2026")
    assert not dialog.banner.isVisible() and dialog.details.toPlainText() == ""
    assert not dialog.verify_button.isEnabled()
    dialog.start("ignored while busy", "x")
    with qtbot.wait_signal(dialog.checked, timeout=20000) as blocker:
        pass
    assert not blocker.args[0].result.valid and dialog.banner.text() == "INVALID"


def test_an_unknown_root_is_invalid(qtbot: QtBot, runner: Runner, signed: SignedPrescription) -> None:
    other = make_test_chain()
    dialog = _dialog(qtbot, runner, other.trust)
    dialog.text_edit.setText(signed.qr_payload)
    with qtbot.wait_signal(dialog.checked, timeout=20000) as blocker:
        dialog.verify_button.click()
    assert not blocker.args[0].result.valid
    assert dialog.banner.text() == "INVALID"


def test_empty_text_asks_for_input(qtbot: QtBot, runner: Runner, chain: TestChain) -> None:
    dialog = _dialog(qtbot, runner, chain.trust)
    with qtbot.wait_signal(dialog.failed) as blocker:
        dialog.verify_button.click()
    assert "Paste the text" in blocker.args[0]


def test_data_dir_trust_has_the_shipped_roots_and_no_lists(tmp_path: Path) -> None:
    trust, lists = data_dir_trust(tmp_path)()
    assert lists == []
    assert isinstance(trust, TrustStore)
