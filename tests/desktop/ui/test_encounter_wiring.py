"""From the patient detail: New encounter (Ctrl+Shift+N), the encounter screen over the window, back, reopen."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.errors import NotEnrolled
from desktop.services.encounters import EncounterService, InChair
from desktop.services.patients import PatientService
from desktop.services.prescribing import Clinician, PrescribingService
from desktop.services.sync_status import SyncStatusService
from desktop.services.timeline import TimelineService
from desktop.store import LocalStore
from desktop.ui.bridges.sync_worker import SyncRound, SyncWorker
from desktop.ui.main_window import MainWindow
from desktop.ui.runner import Runner
from desktop.ui.screens.verify_rx import VerifyPrescriptionDialog
from shared.signing.trust import default_trust
from tests.desktop.ui.conftest import RecordingPresenter
from tests.desktop.ui.keyboard import activate, press, type_text

DOCTOR = Clinician(
    uuid.UUID("019ab000-0000-7000-8000-00000000d0c1"),
    "Dr. Ananya Sharma",
    "doctor",
    {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"},
)


def _not_enrolled() -> SyncRound:
    raise NotEnrolled()


@pytest.fixture
def runner(ui_app: QApplication, local_store: LocalStore, presenter: RecordingPresenter) -> Iterator[Runner]:
    instance = Runner(local_store.writer.executor, error_presenter=presenter)
    yield instance
    instance.shutdown()


def test_new_encounter_from_the_detail_and_open_it_again(
    qtbot: QtBot,
    runner: Runner,
    patient_service: PatientService,
    local_store: LocalStore,
    presenter: RecordingPresenter,
) -> None:
    encounters = EncounterService(writer=local_store.writer, uow=local_store.uow)
    rx = PrescribingService(writer=local_store.writer, uow=local_store.uow)
    patient = patient_service.register({"name": "Meena Devi", "gender": "F", "year_of_birth": 1970}, "t")
    worker = SyncWorker(
        runner, make_client=_not_enrolled, probe=lambda: False, read_status=SyncStatusService(local_store.uow).status
    )
    window = MainWindow(
        runner, patient_service, worker, user_name=DOCTOR.name, actor=str(DOCTOR.user_id),
        error_presenter=presenter, encounters=encounters, prescribing=rx, doctor=DOCTOR,
    )  # fmt: skip
    qtbot.addWidget(window)
    window.resize(1366, 768)
    activate(qtbot, window)
    window.show_patient(patient.id)
    qtbot.waitUntil(lambda: window.detail.patient is not None and window.detail.encounter_list.count() == 1)
    window.detail.edit_button.setFocus()
    press(qtbot, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    screen = window.encounter
    assert screen is not None
    qtbot.waitUntil(lambda: screen.encounter is not None and window.shell.currentWidget() is screen)
    assert screen.encounter is not None
    assert encounters.in_chair() == InChair(patient.id, screen.encounter.id)
    screen.complaint.selectAll()
    type_text(qtbot, "Knee pain", screen.complaint)
    press(qtbot, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)  # saves the draft, then closes
    qtbot.waitUntil(lambda: window.shell.currentIndex() == 0)
    assert encounters.in_chair() is None
    assert encounters.get(screen.encounter.id).chief_complaint == "Knee pain"
    qtbot.waitUntil(lambda: "Knee pain" in window.detail.encounter_list.item(0).text())
    window.detail.encounter_list.setFocus()
    window.detail.encounter_list.setCurrentRow(0)
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.shell.currentWidget() is screen and screen.complaint.text() == "Knee pain")
    assert presenter.shown == []
    worker.stop()


def test_ctrl_t_opens_the_health_timeline_and_esc_goes_back(
    qtbot: QtBot,
    runner: Runner,
    patient_service: PatientService,
    local_store: LocalStore,
    presenter: RecordingPresenter,
) -> None:
    encounters = EncounterService(writer=local_store.writer, uow=local_store.uow)
    rx = PrescribingService(writer=local_store.writer, uow=local_store.uow)
    patient = patient_service.register({"name": "Meena Devi", "gender": "F", "year_of_birth": 1970}, "t")
    encounters.start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": "2026-11-20T05:00:00Z",
         "chief_complaint": "Joint pain"},
        DOCTOR.user_id,
    )  # fmt: skip
    worker = SyncWorker(
        runner, make_client=_not_enrolled, probe=lambda: False, read_status=SyncStatusService(local_store.uow).status
    )
    window = MainWindow(
        runner, patient_service, worker, user_name=DOCTOR.name, actor=str(DOCTOR.user_id),
        error_presenter=presenter, encounters=encounters, prescribing=rx, doctor=DOCTOR,
        timeline=TimelineService(local_store.uow),
    )  # fmt: skip
    qtbot.addWidget(window)
    window.resize(1366, 768)
    activate(qtbot, window)
    window.show_patient(patient.id)
    qtbot.waitUntil(lambda: window.detail.patient is not None)
    window.detail.edit_button.setFocus()
    press(qtbot, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.timeline is not None and window.shell.currentWidget() is window.timeline)
    screen = window.timeline
    assert screen is not None
    assert "Meena Devi" in screen.title.text()
    assert screen.events.rowCount() == 1 and screen.events.item(0, 2).text() == "Joint pain"
    press(qtbot, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.shell.currentIndex() == 0)
    assert presenter.shown == []


def test_ctrl_shift_v_opens_the_verify_dialog(
    qtbot: QtBot,
    runner: Runner,
    patient_service: PatientService,
    local_store: LocalStore,
    presenter: RecordingPresenter,
) -> None:
    worker = SyncWorker(
        runner, make_client=_not_enrolled, probe=lambda: False, read_status=SyncStatusService(local_store.uow).status
    )
    window = MainWindow(
        runner, patient_service, worker, user_name=DOCTOR.name, actor=str(DOCTOR.user_id),
        error_presenter=presenter, verify_trust=lambda: (default_trust(), []),
    )  # fmt: skip
    qtbot.addWidget(window)
    activate(qtbot, window)
    press(qtbot, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(VerifyPrescriptionDialog)))
    (dialog,) = window.findChildren(VerifyPrescriptionDialog)
    dialog.close()
