"""Main window on a real local store: keyboard-only registration with field errors, search as you type, editing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.errors import NotEnrolled
from desktop.services.patients import PatientService
from desktop.services.sync_status import SyncStatusService
from desktop.store import LocalStore
from desktop.ui.bridges.sync_worker import SyncRound, SyncWorker
from desktop.ui.main_window import MainWindow
from desktop.ui.runner import Runner
from desktop.ui.screens.patient_form import BANNER_FIELD
from tests.desktop.ui.conftest import RecordingPresenter
from tests.desktop.ui.keyboard import activate, press, type_text

ENTER = Qt.Key.Key_Return
TAB = Qt.Key.Key_Tab
CTRL = Qt.KeyboardModifier.ControlModifier
RADHA = {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"}
ARUN = {"name": "Arun Murugan", "gender": "M", "year_of_birth": 1975, "abha_number": "91-3772-0586-4665"}
ARUNA = {"name": "Aruna Iyer", "gender": "F", "year_of_birth": 1982, "mobile": "+919812300002"}


def _not_enrolled() -> SyncRound:
    raise NotEnrolled()


@pytest.fixture
def runner(ui_app: QApplication, local_store: LocalStore, presenter: RecordingPresenter) -> Iterator[Runner]:
    instance = Runner(local_store.writer.executor, error_presenter=presenter)
    yield instance
    instance.shutdown()


@pytest.fixture
def window(
    qtbot: QtBot,
    runner: Runner,
    patient_service: PatientService,
    local_store: LocalStore,
    presenter: RecordingPresenter,
) -> MainWindow:
    worker = SyncWorker(
        runner, make_client=_not_enrolled, probe=lambda: False, read_status=SyncStatusService(local_store.uow).status
    )
    main = MainWindow(
        runner, patient_service, worker, user_name="Dr. Ananya Sharma", actor="test", error_presenter=presenter
    )
    qtbot.addWidget(main)
    main.resize(1366, 768)
    activate(qtbot, main)
    return main


def _wait_for_results(qtbot: QtBot, window: MainWindow, query: str) -> list[str]:
    qtbot.waitUntil(lambda: window.search.shown_query == query and not window.search._debounce.isActive())
    model = window.search.model
    return [str(model.index(row, 0).data()) for row in range(model.rowCount())]


class TestRegistrationByKeyboard:
    def test_register_with_a_bad_mobile_first_then_fixed(
        self, qtbot: QtBot, window: MainWindow, patient_service: PatientService, presenter: RecordingPresenter
    ) -> None:
        form = window.form
        press(qtbot, Qt.Key.Key_N, CTRL)
        type_text(qtbot, "Kavita Sharma", form.fields["name"])
        press(qtbot, TAB)
        type_text(qtbot, "f", form.fields["gender"])
        press(qtbot, TAB)
        type_text(qtbot, "1988", form.fields["year_of_birth"])
        press(qtbot, TAB)
        type_text(qtbot, "12345", form.fields["mobile"])
        press(qtbot, ENTER)

        # The shared rule's message, in red under the field; the cursor is back in it with the text selected.
        assert form.shown_errors() == {"mobile": "Mobile number must have 10 digits."}
        assert form.errors["mobile"].isVisible()
        assert form.fields["mobile"].accessibleDescription() == "Mobile number must have 10 digits."
        assert patient_service.count() == 0
        with qtbot.waitSignal(form.saved, timeout=5000) as saved:
            type_text(qtbot, "98123 00009", form.fields["mobile"])  # replaces the selected bad number
            assert not form.errors["mobile"].isVisible()  # typing clears the message
            press(qtbot, ENTER)

        patient = saved.args[0]
        assert (patient.name, patient.gender, patient.year_of_birth, patient.mobile) == (
            "Kavita Sharma",
            "F",
            1988,
            "+919812300009",
        )
        assert patient_service.get(patient.id) == patient
        qtbot.waitUntil(lambda: window.detail.patient is not None and window.detail.patient.id == patient.id)
        assert window.stack.currentWidget() is window.detail
        assert QApplication.focusWidget() is window.search.search_box  # ready for the next patient
        assert presenter.shown == []

    def test_every_problem_at_once_and_escape_cancels(
        self, qtbot: QtBot, window: MainWindow, patient_service: PatientService
    ) -> None:
        form = window.form
        press(qtbot, Qt.Key.Key_N, CTRL)
        press(qtbot, ENTER)  # nothing typed
        assert set(form.shown_errors()) == {"name", "gender", "year_of_birth"}
        assert QApplication.focusWidget() is form.fields["name"]
        type_text(qtbot, "Ravi", form.fields["name"])
        press(qtbot, TAB)
        type_text(qtbot, "m")
        press(qtbot, TAB)
        type_text(qtbot, "19x5")
        for _ in range(4):  # mobile, date of birth, ABHA number, ABHA address
            press(qtbot, TAB)
        type_text(qtbot, "ravi@", form.fields["abha_address"])
        press(qtbot, ENTER)
        errors = form.shown_errors()
        assert errors["year_of_birth"] == "Enter the year of birth as 4 digits, like 1985."
        assert "abha_address" in errors and "name" not in errors
        press(qtbot, Qt.Key.Key_Escape)
        assert window.stack.currentWidget() is window.welcome
        assert patient_service.count() == 0

    def test_duplicate_abha_number_is_refused_clearly(
        self, qtbot: QtBot, window: MainWindow, patient_service: PatientService
    ) -> None:
        patient_service.register(ARUN, actor="test")
        form = window.form
        press(qtbot, Qt.Key.Key_N, CTRL)
        type_text(qtbot, "Arun M", form.fields["name"])
        press(qtbot, TAB)
        type_text(qtbot, "m")
        press(qtbot, TAB)
        type_text(qtbot, "1975")
        for _ in range(3):
            press(qtbot, TAB)
        type_text(qtbot, "91-3772-0586-4665", form.fields["abha_number"])
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: bool(form.error_text(BANNER_FIELD)))
        assert "already registered here for Arun Murugan" in form.error_text(BANNER_FIELD)
        assert form.error_text("abha_number") == "This ABHA number belongs to a patient already registered here."
        assert patient_service.count() == 1

    def test_edit_keeps_the_earlier_value_in_the_history(
        self, qtbot: QtBot, window: MainWindow, patient_service: PatientService
    ) -> None:
        aruna = patient_service.register(ARUNA, actor="test")
        window.show_patient(aruna.id)
        qtbot.waitUntil(lambda: window.detail.patient is not None)
        press(qtbot, Qt.Key.Key_E, CTRL)
        form = window.form
        assert form.values()["mobile"] == "9812300002"
        form.fields["mobile"].setFocus()
        press(qtbot, Qt.Key.Key_A, CTRL)
        with qtbot.waitSignal(form.saved, timeout=5000):
            type_text(qtbot, "9812300099", form.fields["mobile"])
            press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.detail.history.rowCount() == 1)
        assert window.detail.values["mobile"].text() == "+91 98123 00099"
        earlier = window.detail.history.item(0, 1)
        assert earlier is not None and earlier.text() == "+91 98123 00002"
        assert patient_service.get(aruna.id).mobile == "+919812300099"


class TestSearchAsYouType:
    def test_latin_and_devanagari_names_mobile_and_abha(
        self, qtbot: QtBot, window: MainWindow, patient_service: PatientService
    ) -> None:
        radha = patient_service.register(RADHA, actor="test")
        arun = patient_service.register(ARUN, actor="test")
        patient_service.register(ARUNA, actor="test")
        search = window.search
        press(qtbot, Qt.Key.Key_F, CTRL)
        with qtbot.waitSignal(search.results_shown, timeout=5000) as shown:
            type_text(qtbot, "aru", search.search_box)
        assert shown.args == ["aru", 2]  # one search after the pause, not one per key
        assert _wait_for_results(qtbot, window, "aru") == ["Arun Murugan", "Aruna Iyer"]
        assert search.hint.text().startswith("2 patients found")

        type_text(qtbot, "n m")
        assert _wait_for_results(qtbot, window, "arun m") == ["Arun Murugan"]

        press(qtbot, Qt.Key.Key_Escape)
        assert search.query == "" and _wait_for_results(qtbot, window, "") == []
        type_text(qtbot, "राधा", search.search_box)
        assert _wait_for_results(qtbot, window, "राधा") == ["राधा कुमारी"]

        # Down moves into the list; Enter opens the patient.
        press(qtbot, Qt.Key.Key_Down)
        assert QApplication.focusWidget() is search.table
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.detail.patient is not None and window.detail.patient.id == radha.id)
        assert window.detail.heading.text() == "राधा कुमारी"

        press(qtbot, Qt.Key.Key_F, CTRL)
        type_text(qtbot, "98123 00001")
        assert _wait_for_results(qtbot, window, "98123 00001") == ["राधा कुमारी"]
        press(qtbot, Qt.Key.Key_A, CTRL)
        type_text(qtbot, "91377205864665")
        assert _wait_for_results(qtbot, window, "91377205864665") == ["Arun Murugan"]
        assert search.model.patient_id(0) == arun.id

    def test_new_registration_appears_in_the_results_shown(
        self, qtbot: QtBot, window: MainWindow, patient_service: PatientService
    ) -> None:
        search = window.search
        press(qtbot, Qt.Key.Key_F, CTRL)
        type_text(qtbot, "Meena", search.search_box)
        assert _wait_for_results(qtbot, window, "Meena") == []
        assert "Ctrl+N" in search.hint.text()
        press(qtbot, Qt.Key.Key_N, CTRL)
        assert window.form.values()["name"] == "Meena"  # the search text starts the name
        press(qtbot, Qt.Key.Key_End)
        type_text(qtbot, " Devi")
        press(qtbot, TAB)
        type_text(qtbot, "F")
        press(qtbot, TAB)
        type_text(qtbot, "1979")
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: search.model.rowCount() == 1)
        assert search.model.index(0, 0).data() == "Meena Devi"
