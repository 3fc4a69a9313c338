"""`MainWindow`: the shell — patient search on the left, detail or form on the right, sync status always below.

Wiring is in one place, `_connect_signals` (STYLE §2.5). Each local write's result comes back from the
runner as `Runner.op_succeeded`; the window re-broadcasts it as `data_changed`, and each screen decides
whether to refresh (the search drops that patient's cached row and searches again; the detail reloads when
it shows that patient). A sync that brought changes is re-broadcast the same way.

Keyboard (menus show the same): Ctrl+F find, Ctrl+N new patient, Ctrl+E edit the patient shown, F5 or
Ctrl+Shift+S sync now, Esc clears the search (in the search) / cancels (in the form) / goes back to the search
(in the detail), Ctrl+Q quit. Menus open with Alt+F, Alt+P, Alt+S.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QStackedWidget, QWidget

from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import Clinician, PrescribingService
from desktop.services.rx_signing import RxSigningService
from desktop.services.rx_status import RxStatusService
from desktop.services.timeline import TimelineService
from desktop.ui.bridges.sync_worker import SyncWorker
from desktop.ui.error_dialogs import is_cancellation, present_error
from desktop.ui.runner import PresentError, Runner
from desktop.ui.screens.encounter import EncounterScreen
from desktop.ui.screens.patient_detail import PatientDetailScreen
from desktop.ui.screens.patient_form import PatientFormScreen
from desktop.ui.screens.patient_search import PatientSearchScreen
from desktop.ui.screens.verify_rx import KnownStatus, TrustLoader, VerifyPrescriptionDialog
from desktop.ui.signals import emit
from desktop.ui.sync_status import SyncStatusWidget

if TYPE_CHECKING:  # the timeline's charts (pyqtgraph) are imported when it is first opened
    from desktop.ui.screens.timeline import PatientTimelineScreen

WELCOME = (
    "Find a patient with the search box (Ctrl+F): type a name in any language, a mobile number or an ABHA "
    "number.\n\nPress Ctrl+N to register a new patient.\n\nF5 syncs now."
)


def _looks_like_name(text: str) -> bool:
    text = text.strip()
    return bool(text) and "@" not in text and not any(ch.isdigit() for ch in text)


class MainWindow(QMainWindow):
    """The main window.

    Args:
        runner: the app's runner.
        patients: the patient service.
        sync_worker: the sync worker (its signals drive the status area).
        user_name: who is signed in (shown in the title and the status bar).
        actor: id recorded with each change.
        clinic_name: shown in the title.
        error_presenter: where unexpected failures go.
        parent: Qt parent.
    """

    data_changed = Signal(object)  # a write's result (a Patient) or a SyncReport that brought changes
    sign_out_requested = Signal()

    def __init__(
        self,
        runner: Runner,
        patients: PatientService,
        sync_worker: SyncWorker,
        *,
        user_name: str,
        actor: str,
        clinic_name: str = "",
        error_presenter: PresentError = present_error,
        devices_screen: QWidget | None = None,
        encounters: EncounterService | None = None,
        prescribing: PrescribingService | None = None,
        doctor: Clinician | None = None,
        rx_signing: RxSigningService | None = None,
        rx_status: RxStatusService | None = None,
        timeline: TimelineService | None = None,
        verify_trust: TrustLoader | None = None,
        verify_status: KnownStatus | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.devices_screen = devices_screen  # Bluetooth devices (P5): its own window, Ctrl+Shift+D
        self._runner = runner
        self._sync_worker = sync_worker
        self._present_error = error_presenter
        self.setWindowTitle(" · ".join(part for part in ("IntegMed", clinic_name, user_name) if part))
        self.setMinimumSize(1024, 640)
        self.search = PatientSearchScreen(runner, patients, error_presenter=error_presenter, parent=self)
        self.detail = PatientDetailScreen(
            runner, patients, error_presenter=error_presenter, encounters=encounters, parent=self
        )
        self.form = PatientFormScreen(runner, patients, actor=actor, error_presenter=error_presenter, parent=self)
        self.welcome = QLabel(WELCOME, self)
        self.welcome.setProperty("role", "hint")
        self.welcome.setWordWrap(True)
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setContentsMargins(40, 20, 40, 20)
        self.stack = QStackedWidget(self)
        for page in (self.welcome, self.detail, self.form):
            self.stack.addWidget(page)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.search)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(0, 11)
        splitter.setStretchFactor(1, 9)
        splitter.setSizes([1100, 900])  # scaled to the window: the list gets a little more than half
        splitter.setChildrenCollapsible(False)
        # Encounters (P3): the encounter screen takes the whole window, over the search and detail.
        self.shell = QStackedWidget(self)
        self.shell.addWidget(splitter)
        self.encounter: EncounterScreen | None = None
        if encounters is not None and prescribing is not None and doctor is not None:
            self.encounter = EncounterScreen(
                runner,
                encounters,
                prescribing,
                doctor,
                error_presenter=error_presenter,
                rx_signing=rx_signing,
                rx_status=rx_status,
                parent=self,
            )
            self.shell.addWidget(self.encounter)
            self.detail.new_encounter_requested.connect(self.on_detail_new_encounter_requested)
            self.detail.encounter_requested.connect(self.on_detail_encounter_requested)
            self.encounter.closed.connect(self.on_encounter_closed)
        self._timeline_service = timeline
        self._verify_trust = verify_trust
        self._verify_status = verify_status
        self.timeline: PatientTimelineScreen | None = None  # made on first use (charts are heavy)
        if timeline is not None:
            self.detail.timeline_requested.connect(self.on_detail_timeline_requested)
        self.setCentralWidget(self.shell)
        self.sync_status = SyncStatusWidget(self)
        self.user_label = QLabel(f"Signed in: {user_name}", self)
        self.user_label.setAccessibleName("Signed in user")
        self.statusBar().setSizeGripEnabled(False)
        self.statusBar().addPermanentWidget(self.user_label)
        self.statusBar().addPermanentWidget(self.sync_status, 1)
        self._make_actions()
        self._connect_signals()
        self.search.focus_search()

    def _make_actions(self) -> None:
        def action(text: str, *keys: QKeySequence | QKeySequence.StandardKey | str) -> QAction:
            made = QAction(text, self)
            made.setShortcuts([QKeySequence(key) for key in keys])
            made.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(made)
            return made

        self.find_action = action("&Find patient", "Ctrl+F")
        self.new_action = action("&New patient", "Ctrl+N")
        self.edit_action = action("&Edit patient", "Ctrl+E")
        self.sync_action = action("&Sync now", "F5", "Ctrl+Shift+S")
        self.quit_action = action("&Quit", "Ctrl+Q")
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.quit_action)
        patients_menu = self.menuBar().addMenu("&Patients")
        for item in (self.find_action, self.new_action, self.edit_action):
            patients_menu.addAction(item)
        sync_menu = self.menuBar().addMenu("&Sync")
        sync_menu.addAction(self.sync_action)
        self.verify_action = action("&Verify a prescription…", "Ctrl+Shift+V")
        self.verify_action.setEnabled(self._verify_trust is not None)
        self.menuBar().addMenu("P&rescriptions").addAction(self.verify_action)
        if self.devices_screen is not None:
            self.devices_action = action("Bluetooth &devices", "Ctrl+Shift+D")
            self.menuBar().addMenu("&Devices").addAction(self.devices_action)

    def _connect_signals(self) -> None:
        worker, status = self._sync_worker, self.sync_status
        # menus and keys
        self.find_action.triggered.connect(self.on_find_action_triggered)
        self.verify_action.triggered.connect(self.on_verify_action_triggered)
        self.new_action.triggered.connect(self.on_new_action_triggered)
        self.edit_action.triggered.connect(self.on_edit_action_triggered)
        self.sync_action.triggered.connect(self.on_sync_requested)
        self.quit_action.triggered.connect(self.close)
        # screens
        self.search.patient_selected.connect(self.on_search_patient_selected)
        self.search.patient_activated.connect(self.on_search_patient_activated)
        self.detail.edit_requested.connect(self.on_detail_edit_requested)
        self.detail.back_requested.connect(self.search.focus_search)
        self.form.saved.connect(self.on_form_saved)
        self.form.cancelled.connect(self.on_form_cancelled)
        # writes: one broadcast, each screen decides; the sync worker sends them soon
        self._runner.op_succeeded.connect(self.on_runner_op_succeeded)
        self._runner.op_succeeded.connect(worker.on_local_change)
        self.data_changed.connect(self.search.on_data_changed)
        self.data_changed.connect(self.detail.on_data_changed)
        # sync
        status.sync_requested.connect(self.on_sync_requested)
        worker.sync_started.connect(status.on_sync_started)
        worker.sync_progress.connect(status.on_sync_progress)
        worker.sync_finished.connect(status.on_sync_finished)
        worker.sync_failed.connect(status.on_sync_failed)
        worker.online_changed.connect(status.on_online_changed)
        worker.status_changed.connect(status.on_status_changed)
        worker.sync_finished.connect(self.on_sync_worker_sync_finished)
        if self.encounter is not None:  # a status event signed here may have been refused (or accepted) meanwhile
            worker.sync_finished.connect(self.encounter.on_sync_finished)
        worker.sync_failed.connect(self.on_sync_worker_sync_failed)
        # Bluetooth devices: readings attach to the patient open here
        if self.devices_screen is not None:
            self.devices_action.triggered.connect(self.on_devices_action_triggered)
            self.detail.loaded.connect(self.devices_screen.on_patient_opened)  # type: ignore[attr-defined]

    # -- navigation ------------------------------------------------------------------------------------------

    def _form_is_open(self) -> bool:
        return self.stack.currentWidget() is self.form

    @Slot()
    def on_find_action_triggered(self) -> None:
        self.search.focus_search()

    @Slot()
    def on_new_action_triggered(self) -> None:
        if self.form.is_saving:
            return
        query = self.search.query
        self.form.start_new(query.strip() if _looks_like_name(query) else "")
        self.stack.setCurrentWidget(self.form)
        self.form.fields["name"].setFocus(Qt.FocusReason.ShortcutFocusReason)

    @Slot()
    def on_edit_action_triggered(self) -> None:
        patient = self.detail.patient
        if patient is not None and not self.form.is_saving:
            self.on_detail_edit_requested(patient)

    @Slot(object)
    def on_search_patient_selected(self, patient_id: uuid.UUID) -> None:
        if self._form_is_open():
            return  # do not throw away what is being typed; Esc closes the form first
        self.show_patient(patient_id)

    @Slot(object)
    def on_search_patient_activated(self, patient_id: uuid.UUID) -> None:
        if self._form_is_open():
            return  # as above: the form closes with Esc (or by saving) first
        self.show_patient(patient_id)
        self.detail.edit_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def show_patient(self, patient_id: uuid.UUID) -> None:
        """Show a patient's detail on the right."""
        self.detail.show_patient(patient_id)
        self.stack.setCurrentWidget(self.detail)

    @Slot(object)
    def on_detail_edit_requested(self, patient: Any) -> None:
        self.form.start_edit(patient)
        self.stack.setCurrentWidget(self.form)

    @Slot(object)
    def on_form_saved(self, patient: Any) -> None:
        self.show_patient(patient.id)
        self.detail.show_notice(f"Saved {patient.name}.")
        self.search.focus_search()

    @Slot()
    def on_form_cancelled(self) -> None:
        self.stack.setCurrentWidget(self.detail if self.detail.patient is not None else self.welcome)
        self.search.focus_search()

    # -- encounters (P3) -------------------------------------------------------------------------------------

    @Slot(object)
    def on_detail_new_encounter_requested(self, patient: Any) -> None:
        if self.encounter is not None:
            self.encounter.start_new(patient)
            self.shell.setCurrentWidget(self.encounter)
            self.encounter.complaint.setFocus(Qt.FocusReason.OtherFocusReason)

    @Slot(object, object)
    def on_detail_encounter_requested(self, encounter_id: uuid.UUID, patient: Any) -> None:
        if self.encounter is not None:
            self.encounter.open_encounter(encounter_id, patient)
            self.shell.setCurrentWidget(self.encounter)

    @Slot(object)
    def on_detail_timeline_requested(self, patient: Any) -> None:
        """Read the patient's readings, visits and prescriptions off the GUI thread, then draw them."""
        if self._timeline_service is None:
            return
        if self.timeline is None:
            from desktop.ui.screens.timeline import PatientTimelineScreen

            self.timeline = PatientTimelineScreen(self)
            self.shell.addWidget(self.timeline)
            self.timeline.closed.connect(self.on_encounter_closed)
        service, screen, name = self._timeline_service, self.timeline, str(patient.name)
        self._runner.run_query(
            self,
            lambda: service.load(patient.id),
            lambda loaded: self._show_timeline(screen, loaded, name),
            lambda exc: self._present_error(self, exc),
        )

    def _show_timeline(self, screen: PatientTimelineScreen, loaded: Any, name: str) -> None:
        screen.show_timeline(loaded, patient_name=name)
        self.shell.setCurrentWidget(screen)
        screen.events.setFocus(Qt.FocusReason.OtherFocusReason)

    @Slot()
    def on_encounter_closed(self) -> None:
        self.shell.setCurrentIndex(0)
        if self.detail.patient is not None:
            self.show_patient(self.detail.patient.id)

    # -- data and sync ---------------------------------------------------------------------------------------

    @Slot(object)
    def on_runner_op_succeeded(self, result: object) -> None:
        emit(self.data_changed, result)

    @Slot()
    def on_sync_requested(self) -> None:
        self._sync_worker.sync_now(user_started=True)

    @Slot(object, bool)
    def on_sync_worker_sync_finished(self, report: Any, user_started: bool) -> None:
        if getattr(report, "inserted", 0) or getattr(report, "updated", 0):
            emit(self.data_changed, report)
        if user_started and not getattr(report, "rejected", None):
            received = getattr(report, "inserted", 0) + getattr(report, "updated", 0)
            self.sync_status.show_note(f"Sync finished: {report.pushed} sent, {received} received.")

    @Slot(object, bool)
    def on_sync_worker_sync_failed(self, exc: BaseException, user_started: bool) -> None:
        if user_started and not is_cancellation(exc):
            self._present_error(self, exc)  # a sync the user asked for always says how it went

    @Slot()
    def on_verify_action_triggered(self) -> None:
        """The pharmacist's check on this PC: open a scan/photo/PDF or paste QR text (offline)."""
        if self._verify_trust is None:
            return
        dialog = VerifyPrescriptionDialog(
            self._runner, self._verify_trust, known_status=self._verify_status, parent=self
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    @Slot()
    def on_devices_action_triggered(self) -> None:
        screen = self.devices_screen
        if screen is not None:
            screen.setWindowFlag(Qt.WindowType.Window, True)
            screen.resize(1100, 700)
            screen.show()
            screen.raise_()
            screen.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.devices_screen is not None:
            self.devices_screen.close()
        self._sync_worker.stop()
        super().closeEvent(event)
