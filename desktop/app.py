"""Composition root of the desktop app: settings → store → services → QApplication → setup/unlock → main window.

`main(settings)` is what ``integmed`` (no subcommand) runs. It keeps start-up cheap (cold start to a usable
window is a benchmark goal of under 2 s): the store is opened (a few milliseconds for an existing file; a
migration when the app was upgraded) before anything is shown, because every screen needs it; the keyring and
the server are only reached later, off the GUI thread.

`DesktopApp` builds every concrete dependency once — the runner (whose write executor is the store's single
writer), the services, the transports, the sync worker — and moves between the windows:

* not enrolled, or no user with a PIN yet → `SetupWindow` (server URL → HPR OTP → PIN);
* enrolled with known users → `UnlockDialog` (offline PIN; "Sign in online instead" → `SetupWindow`);
* then `MainWindow`, and for a PC that never synced the `FirstSyncDialog` over it, before the sync worker's
  timers start; a `DeviceSignInRequired` from the worker opens `SetupWindow` again to re-enrol the PC.

Tests build `DesktopApp` directly with their own secret store, transports and timings.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from PySide6.QtWidgets import QApplication, QDialog, QWidget

from desktop.config import DesktopSettings
from desktop.errors import KnownError, NotEnrolled
from desktop.rx.revocations import load_cached
from desktop.rx.verify import with_local_status
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.auth import DEVICE_TOKEN, AuthService, Enrolment
from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import Clinician, PrescribingService
from desktop.services.readings import ReadingService
from desktop.services.rx_signing import RxSigningService
from desktop.services.rx_status import RxStatusService
from desktop.services.signing import SigningService
from desktop.services.sync_status import SyncStatus, SyncStatusService
from desktop.services.timeline import TimelineService
from desktop.store import LocalStore, open_local_store
from desktop.store.users import LocalUser
from desktop.sync.client import SyncClient
from desktop.sync.commands import device_secrets
from desktop.sync.transport import Transport
from desktop.ui.bridges.ble_worker import BleWorker
from desktop.ui.bridges.sync_worker import SyncTimings, SyncWorker
from desktop.ui.error_dialogs import ErrorPresenter
from desktop.ui.fonts import register_bundled_fonts, ui_font
from desktop.ui.gc_guard import GuiThreadCollector
from desktop.ui.main_window import MainWindow
from desktop.ui.runner import PresentError, Runner
from desktop.ui.screens.devices import DevicesScreen
from desktop.ui.screens.first_sync import FirstSyncDialog
from desktop.ui.screens.setup import SetupWindow
from desktop.ui.screens.unlock import UnlockDialog
from desktop.ui.style import APP_STYLE_SHEET
from shared.signing.revocation import RevocationList
from shared.signing.rx import Verification
from shared.signing.trust import TrustStore, default_trust

logger = logging.getLogger(__name__)

APP_NAME = "IntegMed"
EXIT_ENVIRONMENT = 3
LOG_FILE = "integmed.log"
RESIGN_IN_REASON = (
    "This computer is no longer allowed to sync. A doctor or the clinic admin should sign in to link it again."
)


class TransportCache:
    """One `Transport` per server URL for the life of the app (keeps connections and the access token)."""

    def __init__(self, factory: Callable[[str], Transport] = Transport) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._transports: dict[str, Transport] = {}

    def get(self, url: str) -> Transport:
        """The transport for `url` (made on first use)."""
        url = url.rstrip("/")
        with self._lock:
            if url not in self._transports:
                self._transports[url] = self._factory(url)
            return self._transports[url]

    def close(self) -> None:
        """Close every transport."""
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()


class LazySecretStore:
    """`SecretStore` opened on first use, on whichever worker thread needs it first.

    Opening probes the OS keyring (a D-Bus round trip on Linux, possibly an unlock prompt), which must not
    happen on the GUI thread during start-up.
    """

    def __init__(self, open_store: Callable[[], SecretStore]) -> None:
        self._open = open_store
        self._lock = threading.Lock()
        self._store: SecretStore | None = None

    def _get(self) -> SecretStore:
        with self._lock:
            if self._store is None:
                self._store = self._open()
            return self._store

    def get(self, key: str) -> str | None:
        return self._get().get(key)

    def set(self, key: str, value: str) -> None:
        self._get().set(key, value)

    def delete(self, key: str) -> None:
        self._get().delete(key)


class SyncLink:
    """This PC's way to the server for the sync worker: a sync client, a probe, and forgetting a refused token.

    Args:
        store: the open store.
        auth: the auth service (enrolment and device token).
        transports: the app's transports.
        secrets: where the device token lives.
    """

    def __init__(
        self,
        store: LocalStore,
        auth: AuthService,
        transports: TransportCache,
        secrets: Any,
        data_dir: Path,
        *,
        before_round: Callable[[], object] | None = None,
    ) -> None:
        self._before_round = before_round  # e.g. sign stale status events again (RxStatusService.resign_stale)
        self._store_dir = data_dir  # the revocation-list cache lives in the data folder
        self._store = store
        self._auth = auth
        self._transports = transports
        self._secrets = secrets
        self._device: tuple[Any, str] | None = None
        self.server_url: str | None = None  # the enrolled server, as of the last client made

    def client(self) -> SyncClient:
        """A sync client for the enrolled PC (worker thread); `NotEnrolled` when it is not enrolled."""
        enrolment = self._auth.enrolment()
        token = self._auth.device_token()
        if enrolment is None or token is None:
            raise NotEnrolled()
        if self._before_round is not None:
            try:
                self._before_round()
            except Exception:  # never keeps the round from running
                logger.exception("the work before a sync round failed")
        self.server_url = enrolment.server_url
        transport = self._transports.get(enrolment.server_url)
        if self._device != (enrolment.device_id, token):
            transport.use_device(enrolment.device_id, token)  # a new token: its access token is fetched anew
            self._device = (enrolment.device_id, token)
        return SyncClient(
            self._store.uow,
            transport,
            self._store.clock,
            device_id=enrolment.device_id,
            revocations_dir=self._store_dir,
        )

    def ping(self) -> bool:
        """True when the enrolled server answers (worker thread; never raises for network trouble)."""
        enrolment = self._auth.enrolment()
        if enrolment is None:
            raise NotEnrolled()
        return self._transports.get(enrolment.server_url).ping()

    def forget_device(self) -> None:
        """Delete the device token the server refused, so the next sign-in enrols the PC again."""
        self._secrets.delete(DEVICE_TOKEN)
        self._device = None


@dataclass(frozen=True)
class StartState:
    """What decides the first window: the enrolment and the users who can unlock offline."""

    enrolment: Enrolment | None
    users: list[LocalUser]


class DesktopApp:
    """The running program: dependencies and the move from setup/unlock to the main window.

    Args:
        settings: the desktop settings.
        store: the open local store (closed by the caller).
        error_presenter: where failures nobody handles go (`ErrorPresenter` with the log path).
        secrets: the device secret store (default: the OS keyring for this data folder, opened lazily).
        transport_factory: makes a `Transport` for a server URL.
        timings: sync worker intervals.
    """

    def __init__(
        self,
        settings: DesktopSettings,
        store: LocalStore,
        *,
        error_presenter: PresentError,
        secrets: Any = None,
        signing_secrets: Any = None,
        transport_factory: Callable[[str], Transport] = Transport,
        timings: SyncTimings | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.present_error = error_presenter
        self.secrets = secrets if secrets is not None else LazySecretStore(lambda: device_secrets(settings))
        self.transports = TransportCache(transport_factory)
        if signing_secrets is None:
            signing_secrets = LazySecretStore(lambda: SecretStore("signing", settings.data_dir))
        self.doctor_keys = DoctorKeys(cast(SecretStore, signing_secrets), settings.data_dir)
        self.auth = AuthService(
            store.uow, cast(SecretStore, self.secrets), self.transports.get, doctor_keys=self.doctor_keys
        )
        self.signing = SigningService(self.doctor_keys, settings.data_dir)
        self.rx_signing = RxSigningService(store.uow, self.signing, settings.data_dir, clock=store.clock)
        self.rx_status = RxStatusService(store.uow, self.signing, clock=store.clock)
        self.patients = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
        self.sync_status = SyncStatusService(store.uow)
        self.encounters = EncounterService(writer=store.writer, uow=store.uow, clock=store.clock)
        self.prescribing = PrescribingService(writer=store.writer, uow=store.uow, clock=store.clock)
        self.readings = ReadingService(store.uow, store.clock, open_encounter=self._open_encounter)
        self.ble_worker = BleWorker(self.readings)  # the BLE thread starts on the first scan or read
        self.runner = Runner(store.writer.executor, error_presenter=error_presenter)
        # Before each round: a cancel whose seq the server gave to another event meanwhile is signed again.
        self.link = SyncLink(
            store, self.auth, self.transports, self.secrets, settings.data_dir, before_round=self.rx_status.resign_stale
        )
        self.sync_worker = SyncWorker(
            self.runner,
            make_client=self.link.client,
            probe=self.link.ping,
            read_status=self.sync_status.status,
            forget_device=self.link.forget_device,
            timings=timings,
        )
        self.setup_window: SetupWindow | None = None
        self.unlock_dialog: UnlockDialog | None = None
        self.main_window: MainWindow | None = None
        self.first_sync: FirstSyncDialog | None = None
        self.user: LocalUser | None = None
        self._closed = False
        self.sync_worker.sign_in_required.connect(self._on_sign_in_required)

    # -- start ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the enrolment and known users off the GUI thread, then show the first window."""
        self.runner.run_query(None, self._read_start_state, self._show_first_window, self._on_start_failed)

    def _read_start_state(self) -> StartState:
        enrolment = self.auth.enrolment()
        users = [user for user in self.auth.known_users() if user.has_pin]
        return StartState(enrolment, users)

    def _show_first_window(self, state: StartState) -> None:
        if state.enrolment is not None and state.users:
            self.show_unlock(state.users, clinic_name=state.enrolment.clinic_name)
        else:
            self.show_setup(server_url=self._server_url(state.enrolment))

    def _on_start_failed(self, exc: BaseException) -> None:
        # Nothing to show without the enrolment (e.g. the keyring refused): say why; closing it ends the app.
        self.present_error(None, exc)

    # -- windows -------------------------------------------------------------------------------------------

    def show_setup(self, *, server_url: str | None = None, reason: str = "") -> SetupWindow:
        """The sign-in window (first run, "Sign in online instead", or re-enrolment)."""
        window = SetupWindow(
            self.runner,
            self.auth,
            check_server=self._check_server,
            server_url=server_url,
            reason=reason,
            error_presenter=self.present_error,
        )
        window.signed_in.connect(self._on_signed_in)
        self.setup_window = window
        window.show()
        window.activateWindow()
        return window

    def _check_server(self, url: str) -> bool:
        return self.transports.get(url).ping()

    def show_unlock(self, users: list[LocalUser], *, clinic_name: str = "") -> UnlockDialog:
        """The offline unlock dialog."""
        dialog = UnlockDialog(
            self.runner, self.auth, users, clinic_name=clinic_name, error_presenter=self.present_error
        )
        dialog.unlocked.connect(self._on_unlocked)
        dialog.online_sign_in_requested.connect(self._on_online_sign_in_requested)
        self.unlock_dialog = dialog
        dialog.show()
        dialog.activateWindow()
        return dialog

    def _on_online_sign_in_requested(self) -> None:
        dialog = self.unlock_dialog
        self.runner.run_query(None, self.auth.enrolment, lambda enrolment: self._switch_to_setup(dialog, enrolment))

    def _switch_to_setup(self, dialog: UnlockDialog | None, enrolment: Enrolment | None) -> None:
        self.show_setup(
            server_url=self._server_url(enrolment), reason="Sign in online with your HPR-registered mobile."
        )
        if dialog is not None:
            dialog.done(QDialog.DialogCode.Rejected)  # done(), not close(): closing means "quit"
            dialog.deleteLater()
        self.unlock_dialog = None

    def _on_unlocked(self, user: LocalUser) -> None:
        self._enter(user, self.unlock_dialog)
        self.unlock_dialog = None

    def _on_signed_in(self, user: LocalUser) -> None:
        if self.main_window is not None:  # re-enrolled from a running main window
            window = self.setup_window
            self.setup_window = None
            if window is not None:
                window.close()
                window.deleteLater()
            self.sync_worker.start()
            self.sync_worker.sync_now(user_started=True)
            return
        self._enter(user, self.setup_window)
        self.setup_window = None

    def _enter(self, user: LocalUser, previous: QWidget | None) -> None:
        """Show the main window (before closing `previous`, so the app never has no window)."""
        self.user = user
        window = MainWindow(
            self.runner,
            self.patients,
            self.sync_worker,
            user_name=user.name,
            actor=str(user.user_id),
            clinic_name=_clinic_name(user),
            error_presenter=self.present_error,
            devices_screen=self._devices_screen(user),
            encounters=self.encounters,
            prescribing=self.prescribing,
            doctor=Clinician.of(user),
            rx_signing=self.rx_signing,
            rx_status=self.rx_status,
            timeline=TimelineService(self.store.uow),
            verify_trust=self._verify_trust,
            verify_status=self._verify_status,
        )
        self.main_window = window
        window.resize(1366, 768)
        window.show()
        window.activateWindow()
        if previous is not None:
            if isinstance(previous, QDialog):
                previous.done(QDialog.DialogCode.Accepted)
            else:
                previous.close()
            previous.deleteLater()
        self.runner.run_query(None, self.sync_status.status, self._after_main_window_shown)

    def _devices_screen(self, user: LocalUser) -> DevicesScreen:
        self.readings.set_actor(str(user.user_id))
        return DevicesScreen(self.runner, self.readings, self.ble_worker, error_presenter=self.present_error)

    def _after_main_window_shown(self, status: SyncStatus) -> None:
        if status.has_synced or self.main_window is None:
            self.sync_worker.start()
            return
        clinic = _clinic_name(self.user) if self.user is not None else ""
        dialog = FirstSyncDialog(self.sync_worker, clinic_name=clinic, parent=self.main_window)
        dialog.finished.connect(self._after_first_sync)
        self.first_sync = dialog
        dialog.start()

    def _after_first_sync(self, _result: int) -> None:
        if self.first_sync is not None:
            self.first_sync.deleteLater()
            self.first_sync = None
        if not self._closed:
            self.sync_worker.start()

    def _on_sign_in_required(self, _exc: KnownError) -> None:
        # The refused token is being forgotten, which ends `enrolment()`: use the server the worker last used.
        if self.setup_window is None:
            self.show_setup(server_url=self.settings.server_url or self.link.server_url, reason=RESIGN_IN_REASON)

    def _server_url(self, enrolment: Enrolment | None) -> str | None:
        return self.settings.server_url or (enrolment.server_url if enrolment is not None else None)

    # -- end -----------------------------------------------------------------------------------------------

    def _verify_status(self, result: Verification) -> tuple[Verification, str | None]:
        """What this PC's records say of the verified prescription: cancelled, superseded, dispensed."""
        return with_local_status(result, self.settings.database_path)

    def _verify_trust(self) -> tuple[TrustStore, list[RevocationList]]:
        """The roots a pharmacist's verifier ships with and the revocation lists installed on this PC."""
        trust = default_trust()
        return trust, list(load_cached(self.settings.data_dir, trust).lists)

    def _open_encounter(self) -> tuple[uuid.UUID, uuid.UUID] | None:
        """The encounter open on screen (a reading taken now belongs to its vitals), or None."""
        chair = self.encounters.in_chair()
        return (chair.patient_id, chair.encounter_id) if chair is not None else None

    def close(self) -> None:
        """Stop the worker, wait for calls under way, close the windows and the transports (not the store)."""
        if self._closed:
            return
        self._closed = True
        self.sync_worker.shut_down()  # a round under way stops after its current batch or page
        self.ble_worker.shutdown()
        self.runner.shutdown(wait_s=30)
        for window in (self.first_sync, self.unlock_dialog, self.setup_window, self.main_window):
            if window is not None:
                window.hide()
                window.deleteLater()
        self.transports.close()


def _clinic_name(user: LocalUser) -> str:
    clinic = user.profile.get("clinic")
    return str(clinic.get("name", "")) if isinstance(clinic, dict) else ""


def prepare_application(app: QApplication, *, gui_thread_gc: bool = True) -> GuiThreadCollector | None:
    """Name the application, register the bundled fonts (Indian scripts) and make them the UI font.

    With ``gui_thread_gc`` the cycle collector runs only on the GUI thread (`desktop.ui.gc_guard`); returns it.
    """
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    register_bundled_fonts()
    app.setFont(ui_font())
    app.setStyleSheet(APP_STYLE_SHEET)
    return GuiThreadCollector(parent=app) if gui_thread_gc else None


def configure_logging(data_dir: Path) -> Path | None:
    """Log to ``<data dir>/logs/integmed.log`` (rotated); returns the path, or None if it cannot be written."""
    folder = data_dir / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            folder / LOG_FILE, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return folder / LOG_FILE


def main(settings: DesktopSettings) -> int:
    """Run the desktop app until its last window closes; returns the exit code."""
    log_path = configure_logging(settings.data_dir)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    collector = prepare_application(app)
    presenter = ErrorPresenter(log_path)
    try:
        store = open_local_store(settings.database_path, backups_dir=settings.backups_dir)
    except KnownError as exc:
        box = presenter(None, exc)
        if box is not None:
            box.exec()
        return EXIT_ENVIRONMENT
    desktop = DesktopApp(settings, store, error_presenter=presenter)
    try:
        desktop.start()
        return int(app.exec())
    finally:
        desktop.close()
        store.close()
        if collector is not None:
            collector.stop()
