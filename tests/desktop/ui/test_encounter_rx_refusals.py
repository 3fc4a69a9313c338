"""The clinic server refuses a cancellation signed on this PC: the encounter screen says so in words, under the
status, and offers the cancellation again (real SQLite store, real signing, real widgets offscreen, keyboard).

The refusal comes from the sync client's own push-answer code (`note_refused_drafts`) with the server's words,
and once end to end: a real push to the real server (uvicorn on loopback, embedded PostgreSQL) of a cancellation
signed with a key revoked meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop.services.encounters import EncounterService
from desktop.services.prescribing import Clinician, PrescribingService
from desktop.services.rx_signing import RxSigningService
from desktop.services.rx_status import RxStatusService, status_of
from desktop.services.signing import SigningService
from desktop.store import LocalStore
from desktop.store.rx_status import StoredEvent
from desktop.sync.apply_prescriptions import note_refused_drafts
from desktop.ui.runner import Runner
from desktop.ui.screens.encounter import EncounterScreen
from desktop.ui.screens.rx_refusals import refusal_notice
from desktop.ui.style import ERROR_COLOR, MUTED_COLOR, WARNING_COLOR
from shared.ids import uuid7
from shared.signing.keys import key_id
from shared.signing.testing import make_test_chain
from shared.sync.protocol import ChangeResult, ChangeStatus, RecordKind, RejectCode
from tests.desktop.ui.encounter_harness import DOCTOR, MBBS, Harness, doctor, signing_for
from tests.desktop.ui.keyboard import activate, press, type_text
from tests.desktop.ui.render import render_png
from tests.e2e.conftest import PC, Server, make_pc, sqlite_template_e2e  # noqa: F401  (fixtures)
from tests.e2e.test_rx_status_sync import doctor_pc, rest
from tests.e2e.test_signed_rx_sync import RADHA, signed_on_pc
from tests.sync_server.conftest import MBBS_MOBILE

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
# As the sync server words it (`sync_server.services.rx_sync._verify_status`): the doctor's key on this PC is not
# one the server certified (e.g. the PC was re-installed and its key re-made, not yet certified again).
UNKNOWN_KEY = "unknown_key: k-7f3a is not a doctor key certified by this server"


def push_answer(store: LocalStore, reason: RejectCode | None, message: str = "") -> None:
    """What `desktop.sync.client` does with the server's answer to a batch: take the outbox, ack it and note the
    results (`note_refused_drafts`) in one transaction. Status events get `reason` (applied when None); the
    rest of the batch (the signed prescription, its draft) is applied."""

    def write() -> None:
        with store.uow.write() as uow:
            batch = uuid7()
            entries = uow.outbox.take_unsent(batch, 100)
            assert any(e.kind == RecordKind.PRESCRIPTION_STATUS for e in entries)
            results = [
                ChangeResult(kind=RecordKind(e.kind), id=e.record_id, status=ChangeStatus.REJECTED, reason=reason,
                             message=message)
                if e.kind == RecordKind.PRESCRIPTION_STATUS and reason is not None
                else ChangeResult(kind=RecordKind(e.kind), id=e.record_id, status=ChangeStatus.APPLIED,
                                  server_version=1)
                for e in entries
            ]  # fmt: skip
            uow.outbox.ack(batch)
            note_refused_drafts(uow, entries, results)
            uow.commit()

    store.writer.run(write)


def queued_status_events(store: LocalStore) -> int:
    with store.uow.read() as uow:
        return sum(1 for e in uow.outbox.peek_unsent(100) if e.kind == RecordKind.PRESCRIPTION_STATUS)


@pytest.mark.expect_log_warnings  # the test PC has no OS keyring: the signing key goes to the data folder's file
def test_a_refused_cancellation_is_said_under_the_status_and_the_doctor_cancels_again(
    qtbot: QtBot, harness: Harness, presenter: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    signing = signing_for(tmp_path, make_test_chain())
    reasons = ["Wrong dose printed", "Wrong dose printed; patient called back"]
    opened: list[Path] = []

    def ask(_parent: QWidget, _what: str) -> str | None:
        return reasons.pop(0)

    signer = RxSigningService(harness.store.uow, signing, tmp_path, clock=harness.store.clock)
    status = RxStatusService(harness.store.uow, signing, clock=harness.store.clock)

    def open_screen() -> EncounterScreen:
        made = EncounterScreen(
            harness.runner, harness.encounters, harness.rx, doctor(MBBS), confirm=lambda _p, _t, _x: True,
            ask_cancel=ask, error_presenter=presenter, open_file=opened.append, rx_signing=signer, rx_status=status,
        )  # fmt: skip
        qtbot.addWidget(made)
        made.resize(1366, 768)
        activate(qtbot, made)
        return made

    screen = open_screen()
    screen.start_new(harness.patient, "Tiredness and thirst")
    qtbot.waitUntil(lambda: screen.encounter is not None and screen.pad.result is not None)
    screen.pad.focus_line(0)
    type_text(qtbot, "Metf 1000 bd 30d", screen.pad.rows[0].edit)
    press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(opened) and screen.cancel_rx_button.isVisible(), timeout=20_000)
    assert not screen.rx_refusal_label.isVisible()  # nothing refused yet
    assert screen.cancel_rx_button.text() == "Cancel prescription… (Ctrl+Shift+C)"

    press(qtbot, Qt.Key.Key_C, CTRL_SHIFT)
    qtbot.waitUntil(lambda: "CANCELLED" in screen.rx_status_label.text(), timeout=20_000)
    harness.settle()
    assert not screen.cancel_rx_button.isVisible() and not screen.rx_refusal_label.isVisible()

    # The next sync round: the server refuses the cancellation for good.
    push_answer(harness.store, RejectCode.BAD_SIGNATURE, UNKNOWN_KEY)
    screen.on_sync_finished(object(), False)
    qtbot.waitUntil(screen.rx_refusal_label.isVisible, timeout=20_000)
    harness.settle()
    said = screen.rx_refusal_label.text()
    assert said.startswith("The clinic server refused your cancellation of ")
    assert (
        ": your signature on it did not verify (k-7f3a is not a doctor key certified by this server).\n"
        "The prescription is NOT CANCELLED on the server: pharmacies and the clinic's other PCs still see it as "
        "signed and valid. Ask the clinic admin to check your signing key, then cancel again (Ctrl+Shift+C)."
    ) in said
    assert ERROR_COLOR in screen.rx_refusal_label.styleSheet()
    assert screen.message.text() == "The clinic server refused a cancellation: see the note over the prescription."
    assert screen.rx_refusal_label.accessibleName() == "Server refusal of the prescription status"
    assert screen.rx_refusal_label.accessibleDescription() == said
    # The refused event does not count: the prescription is signed again here, and may be cancelled again.
    assert screen.rx_status_label.text().startswith("Prescription signed ")
    assert screen.cancel_rx_button.isVisible() and screen.sign_button.isEnabled()
    assert screen.cancel_rx_button.text() == "Cancel again… (Ctrl+Shift+C)"
    # Nothing is cut: the whole notice fits its label at 1366×768, and the Rx pad keeps room under it.
    render_png(artifacts_dir / "ui_encounter_rx_cancel_refused.png", screen)
    label = screen.rx_refusal_label
    assert label.height() >= label.heightForWidth(label.width()) and screen.pad.height() > 300

    # Opened again later (another session), the refusal is read back from the store.
    encounter_id = screen.encounter.id  # type: ignore[union-attr]
    screen.close()
    screen = open_screen()
    screen.open_encounter(encounter_id, harness.patient)
    qtbot.waitUntil(screen.rx_refusal_label.isVisible, timeout=20_000)
    harness.settle()
    assert screen.rx_refusal_label.text() == said and screen.cancel_rx_button.isVisible()

    press(qtbot, Qt.Key.Key_C, CTRL_SHIFT)  # cancel again, once the admin fixed the key
    qtbot.waitUntil(lambda: "CANCELLED" in screen.rx_status_label.text(), timeout=20_000)
    harness.settle()
    assert reasons == [] and presenter.shown == []
    assert "patient called back (waiting to sync)" in screen.rx_status_label.text()
    assert not screen.cancel_rx_button.isVisible() and not screen.sign_button.isEnabled()
    assert screen.message.text().startswith("Prescription cancelled: it is never printed again.")
    assert queued_status_events(harness.store) == 1
    assert screen.rx_refusal_label.isVisible() and WARNING_COLOR in screen.rx_refusal_label.styleSheet()
    assert screen.rx_refusal_label.text().endswith(
        "The cancellation shown above replaces it; it reaches the server at the next sync."
    )
    render_png(artifacts_dir / "ui_encounter_rx_cancel_refused_then_cancelled_again.png", screen)

    push_answer(harness.store, None)  # this time the server holds it
    screen.on_sync_finished(object(), False)
    qtbot.waitUntil(lambda: MUTED_COLOR in screen.rx_refusal_label.styleSheet(), timeout=20_000)
    assert "(waiting to sync)" not in screen.rx_status_label.text()
    assert screen.rx_refusal_label.text().endswith(
        "The prescription is cancelled on the server all the same: nothing more to do."
    )


@pytest.mark.expect_log_warnings  # the keyring file; the sync client logs the server's refusal
def test_the_real_server_refuses_a_cancellation_signed_with_a_key_revoked_meanwhile_and_the_screen_says_so(
    qtbot: QtBot,
    make_pc: Callable[..., PC],  # noqa: F811
    server: Server,
    sandbox_url: str,
    presenter: Any,
    artifacts_dir: Path,
    ui_app: QApplication,  # the bundled fonts: the patient's name is in Devanagari
) -> None:
    pc = make_pc("pc-a")
    assert pc.store is not None
    keys, doctor_id = doctor_pc(pc, sandbox_url)
    patient = pc.patients.register(RADHA, actor="test")
    signed_on_pc(pc, keys, doctor_id, patient.id)
    assert pc.sync().complete  # the server holds the signed prescription
    revoked = rest(  # the PC's key is revoked at the server (the PC does not know until its next sync)
        server, sandbox_url, MBBS_MOBILE, "POST", "/api/v1/signing/revocations",
        json={"kid": key_id(keys.public_key(doctor_id)), "reason": "PC stolen"},
    )  # fmt: skip
    assert revoked.status_code == 201, revoked.text

    runner = Runner(pc.store.writer.executor, error_presenter=presenter)
    encounters = EncounterService(writer=pc.store.writer, uow=pc.store.uow, clock=pc.store.clock)
    screen = EncounterScreen(
        runner, encounters, PrescribingService(writer=pc.store.writer, uow=pc.store.uow),
        Clinician(doctor_id, "Dr. Ananya Sharma", "doctor", MBBS), confirm=lambda _p, _t, _x: True,
        ask_cancel=lambda _p, _w: "Wrong dose printed", error_presenter=presenter,
        rx_status=RxStatusService(pc.store.uow, SigningService(keys, pc.data_dir), clock=pc.store.clock),
    )  # fmt: skip
    qtbot.addWidget(screen)
    try:
        screen.resize(1366, 768)
        activate(qtbot, screen)
        (encounter,) = encounters.for_patient(patient.id)
        screen.open_encounter(encounter.id, patient)
        qtbot.waitUntil(screen.cancel_rx_button.isVisible, timeout=20_000)
        press(qtbot, Qt.Key.Key_C, CTRL_SHIFT)
        qtbot.waitUntil(lambda: "CANCELLED" in screen.rx_status_label.text(), timeout=20_000)
        runner_idle = lambda: runner.busy_count == 0  # noqa: E731
        qtbot.waitUntil(runner_idle, timeout=20_000)

        report = pc.sync()
        assert [(r.kind, r.reason) for r in report.rejected] == [("prescription_status", "bad_signature")]
        screen.on_sync_finished(report, False)
        qtbot.waitUntil(screen.rx_refusal_label.isVisible, timeout=20_000)
        qtbot.waitUntil(runner_idle, timeout=20_000)
        said = screen.rx_refusal_label.text()
        server_words = report.rejected[0].message.split(": ", 1)[1].rstrip(". ")  # after the verifier's code
        assert f": your signature on it did not verify ({server_words}).\n" in said, (said, report.rejected)
        assert "The prescription is NOT CANCELLED on the server" in said and "check your signing key" in said
        assert screen.rx_status_label.text().startswith("Prescription signed ")
        assert screen.cancel_rx_button.isVisible() and screen.cancel_rx_button.text().startswith("Cancel again")
        assert presenter.shown == []
        render_png(artifacts_dir / "ui_encounter_rx_cancel_refused_by_server.png", screen)
    finally:
        runner.shutdown(wait_s=5)


# --- the words, for each answer the server gives (`sync_server.services.rx_sync`, status events) ------------------

AT = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
OTHER_DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c2")


def event(state: str = "refused", refusal: str | None = None, *, minutes: int = 0, **changes: Any) -> StoredEvent:
    at = AT + timedelta(minutes=minutes)
    made = StoredEvent(
        id=uuid.uuid4(), prescription_id=uuid.UUID(int=7), seq=1, status="cancelled", reason="Wrong dose", at=at,
        signer_id=DOCTOR, signer_kid="k-7f3a", cose=b"", state=state, refusal=refusal,  # type: ignore[arg-type]
        created_at=at, updated_at=at,
    )  # fmt: skip
    return replace(made, **changes)


def notice(*events: StoredEvent, viewer: uuid.UUID = DOCTOR) -> tuple[str, str] | None:
    said = refusal_notice(status_of(list(events)), viewer=viewer, prescriber=DOCTOR)
    return None if said is None else (said.text, said.severity)


def when(minutes: int = 0) -> str:
    return (AT + timedelta(minutes=minutes)).astimezone().strftime("%d %b %Y %H:%M")


NOT_CANCELLED = (
    "The prescription is NOT CANCELLED on the server: pharmacies and the clinic's other PCs still see it as signed "
    "and valid. "
)


def test_nothing_refused_says_nothing() -> None:
    assert notice() is None
    assert notice(event("synced")) is None and notice(event("pending")) is None and notice(event("stale")) is None


@pytest.mark.parametrize(
    ("refusal", "why", "action"),
    [
        (
            "not_in_scope: This prescription belongs to another clinic",
            "This prescription belongs to another clinic",
            "Cancelling again from this PC would be refused too: contact the clinic admin.",
        ),
        (
            "invalid_record: prescription_id: no prescription 019ab; push it first",
            "no prescription 019ab; push it first",
            "Cancel again (Ctrl+Shift+C) if the reason allows; if it is refused again, contact the clinic admin.",
        ),
        (
            "bad_signature: revoked_key: The doctor's key was revoked on 20 Nov 2026.",
            "your signature on it did not verify (The doctor's key was revoked on 20 Nov 2026)",
            "Ask the clinic admin to check your signing key, then cancel again (Ctrl+Shift+C).",
        ),
        (
            "invalid_record: ",
            "no reason given",
            "Cancel again (Ctrl+Shift+C) if the reason allows; if it is refused again, contact the clinic admin.",
        ),
    ],
)
def test_a_refusal_that_leaves_the_prescription_valid_is_an_error_with_what_to_do(
    refusal: str, why: str, action: str
) -> None:
    said = notice(event(refusal=refusal))
    assert said == (
        f"The clinic server refused your cancellation of {when()}: {why}.\n{NOT_CANCELLED}{action}",
        "error",
    )
    shown = refusal_notice(status_of([event(refusal=refusal)]), viewer=DOCTOR, prescriber=DOCTOR)
    assert shown is not None
    assert shown.retry_refused is refusal.startswith("not_in_scope")  # Cancel is offered again unless futile


def test_another_doctor_on_this_pc_is_told_who_may_cancel() -> None:
    text, severity = notice(event(refusal="not_in_scope: not the prescriber"), viewer=OTHER_DOCTOR) or ("", "")
    assert text.startswith(f"The clinic server refused the cancellation signed on this PC of {when()}: ")
    assert text.endswith("Only the prescribing doctor can cancel it, on his own sign-in; or contact the clinic admin.")
    assert severity == "error"


def test_already_ended_on_the_server_waits_for_the_pull() -> None:
    refusal = "signed_immutable: The prescription is already cancelled (event 1); nothing may follow"
    text, severity = notice(event(refusal=refusal)) or ("", "")
    assert "NOT CANCELLED" not in text and severity == "warning"
    assert text.endswith("from another PC; it shows here after the next sync.")
    shown = refusal_notice(status_of([event(refusal=refusal)]), viewer=DOCTOR, prescriber=DOCTOR)
    assert shown is not None and shown.retry_refused  # the screen does not offer Cancel again: it would be refused


def test_ended_by_another_pcs_cancellation_is_history_not_an_error() -> None:
    pulled = event("synced", seq=1, signer_id=None, reason="Duplicate", minutes=5)
    mine = event(refusal="signed_immutable: the prescription was already cancelled (event 1)", seq=2, minutes=6)
    assert notice(pulled, mine) == (
        f"The clinic server refused your cancellation of {when(6)}: the prescription was already cancelled "
        "(event 1).\nThe prescription is cancelled on the server all the same: nothing more to do.",
        "info",
    )


def test_many_refusals_tell_the_latest_three_and_count_the_rest() -> None:
    refused = [event(refusal=f"invalid_record: attempt {n}", minutes=n) for n in range(5)]
    lines = (notice(*reversed(refused)) or ("", ""))[0].split("\n")
    assert lines[0] == "2 earlier refusals are not shown."
    assert [line.rsplit(": ", 1)[1] for line in lines[1:4]] == ["attempt 2.", "attempt 3.", "attempt 4."]
    assert lines[4].startswith("The prescription is NOT CANCELLED")
    one_more = (notice(*refused[:4]) or ("", ""))[0]
    assert one_more.startswith("1 earlier refusal is not shown.\n")
