"""Each main screen rendered at 1366×768 to tests/artifacts/ui_*.png, for people to look at (STYLE §2.8).

The pictures use names in six Indian scripts; `TestIndicNamesRender` also checks, without a person, that the
result table and the detail heading shape those names with the bundled fonts (no empty boxes).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.errors import NotEnrolled, ServerUnreachable
from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.services.patients import PatientService
from desktop.services.sync_status import SyncStatus, SyncStatusService
from desktop.store import LocalStore
from desktop.ui.bridges.sync_worker import SyncRound, SyncWorker
from desktop.ui.main_window import MainWindow
from desktop.ui.runner import Runner
from desktop.ui.screens.first_sync import FirstSyncDialog
from desktop.ui.screens.setup import MOBILE, SetupWindow
from desktop.ui.screens.unlock import UnlockDialog
from shared.records.patient import Patient
from tests.desktop.ui.conftest import RecordingPresenter
from tests.desktop.ui.keyboard import activate, press, type_text
from tests.desktop.ui.render import render_png
from tests.desktop.ui.test_fonts import shaped_runs, shaping_problems
from tests.desktop.ui.test_unlock import _known_user

ENTER = Qt.Key.Key_Return
PEOPLE = [
    {
        "name": "राधा कुमारी",
        "gender": "F",
        "year_of_birth": 1990,
        "mobile": "+919812300001",
        "abha_number": "91-3772-0586-4665",
        "address": {"line": "12 MG Road", "district": "Pune", "state": "Maharashtra", "pincode": "411001"},
    },
    {"name": "முருகன் செல்வம்", "gender": "M", "year_of_birth": 1968, "mobile": "+919812300002"},
    {
        "name": "অমিত দাস",
        "gender": "M",
        "year_of_birth": 1979,
        "mobile": "+919812300003",
        "abha_address": "amit.das@abdm",
    },
    {"name": "రాము నాయుడు", "gender": "M", "year_of_birth": 1955, "mobile": "+919812300004"},
    {"name": "અમિત પટેલ", "gender": "M", "year_of_birth": 1987, "mobile": "+919812300005"},
    {"name": "ರಾಮು ಗೌಡ", "gender": "M", "year_of_birth": 2001, "mobile": "+919812300006"},
    {"name": "Aruna Iyer", "gender": "F", "year_of_birth": 1982, "mobile": "+919812300007"},
    {"name": "Kavita Sharma", "gender": "F", "year_of_birth": 1994, "mobile": "+919812300008"},
]


def _not_enrolled() -> SyncRound:
    raise NotEnrolled()


@pytest.fixture
def runner(ui_app: QApplication, local_store: LocalStore, presenter: RecordingPresenter) -> Iterator[Runner]:
    instance = Runner(local_store.writer.executor, error_presenter=presenter)
    yield instance
    instance.shutdown()


@pytest.fixture
def window(qtbot: QtBot, runner: Runner, patient_service: PatientService, local_store: LocalStore) -> MainWindow:
    worker = SyncWorker(
        runner, make_client=_not_enrolled, probe=lambda: True, read_status=SyncStatusService(local_store.uow).status
    )
    main = MainWindow(
        runner,
        patient_service,
        worker,
        user_name="Dr. Ananya Sharma",
        actor="test",
        clinic_name="Sharma Family Clinic",
    )
    qtbot.addWidget(main)
    main.resize(1366, 768)
    activate(qtbot, main)
    status = main.sync_status
    status.on_online_changed(True)
    last = datetime.now(UTC).replace(hour=5, minute=12)
    status.on_status_changed(SyncStatus(pending=2, last_synced_at=last, last_error=None, has_synced=True))
    return main


@pytest.fixture
def people(patient_service: PatientService) -> list[Patient]:
    registered = [patient_service.register(person, actor="test") for person in PEOPLE]
    radha = registered[0]
    patient_service.update(radha.id, {"mobile": "+919812300011"}, actor="test")
    patient_service.update(radha.id, {"name": "राधा देवी कुमारी"}, actor="test")
    return registered


def _search(qtbot: QtBot, window: MainWindow, text: str) -> None:
    press(qtbot, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    type_text(qtbot, text, window.search.search_box)
    qtbot.waitUntil(lambda: window.search.shown_query == text)


class TestRenderScreens:
    def test_setup_with_a_field_error(
        self, qtbot: QtBot, runner: Runner, local_store: LocalStore, device_secrets: SecretStore, artifacts_dir: Path
    ) -> None:
        auth = AuthService(local_store.uow, device_secrets, lambda url: None)  # type: ignore[arg-type, return-value]
        window = SetupWindow(runner, auth, check_server=lambda url: True, server_url="https://sync.example.org")
        qtbot.addWidget(window)
        window.resize(1366, 768)
        activate(qtbot, window)
        window.go_to(MOBILE)
        type_text(qtbot, "98100 0001", window.steps[MOBILE].field)
        press(qtbot, ENTER)
        assert window.steps[MOBILE].error.isVisible()
        render_png(artifacts_dir / "ui_setup.png", window)

    def test_unlock_after_a_wrong_pin(
        self, qtbot: QtBot, runner: Runner, local_store: LocalStore, device_secrets: SecretStore, artifacts_dir: Path
    ) -> None:
        auth = AuthService(local_store.uow, device_secrets, lambda url: None)  # type: ignore[arg-type, return-value]
        _known_user(local_store, auth, "Dr. Ananya Sharma", "doctor")
        _known_user(local_store, auth, "डॉ. राघव कुलकर्णी", "doctor")
        _known_user(local_store, auth, "Meera Iyer", "front_desk")
        dialog = UnlockDialog(runner, auth, auth.known_users(), clinic_name="Sharma Family Clinic")
        qtbot.addWidget(dialog)
        activate(qtbot, dialog)
        type_text(qtbot, "111111", dialog.pin_edit)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: bool(dialog.message))
        render_png(artifacts_dir / "ui_unlock.png", None, dialog)

    def test_main_window_with_results(
        self, qtbot: QtBot, window: MainWindow, people: list[Patient], artifacts_dir: Path
    ) -> None:
        _search(qtbot, window, "98123")
        assert window.search.model.rowCount() == len(PEOPLE)
        press(qtbot, Qt.Key.Key_Down)
        qtbot.waitUntil(lambda: window.detail.patient is not None)
        render_png(artifacts_dir / "ui_main_results.png", window)

    def test_status_bar_offline_with_changes_waiting(
        self, qtbot: QtBot, window: MainWindow, people: list[Patient], artifacts_dir: Path
    ) -> None:
        status = window.sync_status
        status.on_online_changed(False)
        status.on_sync_failed(ServerUnreachable(detail="ConnectError"), False)
        status.on_status_changed(
            SyncStatus(
                pending=3, last_synced_at=datetime(2026, 11, 3, 4, 40, tzinfo=UTC), last_error="x", has_synced=True
            )
        )
        _search(qtbot, window, "राधा")
        assert status.connection_text == "Offline" and status.waiting_label.text() == "3 changes waiting"
        render_png(artifacts_dir / "ui_main_offline.png", window)

    def test_registration_form_with_errors(
        self, qtbot: QtBot, window: MainWindow, people: list[Patient], artifacts_dir: Path
    ) -> None:
        press(qtbot, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        form = window.form
        type_text(qtbot, "सुनीता यादव", form.fields["name"])
        press(qtbot, Qt.Key.Key_Tab)
        type_text(qtbot, "F")
        press(qtbot, Qt.Key.Key_Tab)
        type_text(qtbot, "1889")
        press(qtbot, Qt.Key.Key_Tab)
        type_text(qtbot, "12345")
        press(qtbot, ENTER)
        assert set(form.shown_errors()) == {"year_of_birth", "mobile"}
        render_png(artifacts_dir / "ui_form_errors.png", window)

    def test_patient_detail_with_history(
        self, qtbot: QtBot, window: MainWindow, people: list[Patient], artifacts_dir: Path
    ) -> None:
        window.show_patient(people[0].id)
        qtbot.waitUntil(lambda: window.detail.history.rowCount() == 2)
        render_png(artifacts_dir / "ui_patient_detail.png", window)

    def test_first_sync_progress(self, qtbot: QtBot, window: MainWindow, artifacts_dir: Path) -> None:
        ticks = iter([0.0, 30.0, 30.0, 30.0, 30.0])
        dialog = FirstSyncDialog(
            window._sync_worker, clinic_name="Sharma Family Clinic", clock=lambda: next(ticks), parent=window
        )
        dialog.set_status("Receiving 5000 record(s)")
        dialog.set_total(5000)
        dialog.advance(1200)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.progress_text == "1,200 of 5,000 records")
        assert dialog.eta_text == "about 2 min left"
        render_png(artifacts_dir / "ui_first_sync.png", window, dialog)
        dialog.hide()


class TestIndicNamesRender:
    def test_result_rows_and_detail_shape_with_bundled_fonts(
        self, qtbot: QtBot, window: MainWindow, people: list[Patient]
    ) -> None:
        _search(qtbot, window, "98123")
        table = window.search.table
        for row in range(window.search.model.rowCount()):
            name = str(window.search.model.index(row, 0).data())
            assert shaping_problems(shaped_runs(name, table.font())) == [], name
        window.show_patient(people[1].id)
        qtbot.waitUntil(lambda: window.detail.heading.text() == "முருகன் செல்வம்")
        heading = window.detail.heading
        assert shaping_problems(shaped_runs(heading.text(), heading.font())) == []
