"""The whole app against a real server: first run, offline unlock, sync status as the server goes and comes back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.app import RESIGN_IN_REASON, DesktopApp
from desktop.security.secrets import SecretStore
from desktop.services.auth import DEVICE_TOKEN
from desktop.store.users import LocalUser
from desktop.ui.screens.setup import MOBILE, OTP, PIN, SERVER, UNREACHABLE_TEXT
from shared.signing.rx import verify_qr_payload
from shared.signing.testing import sample_content
from shared.signing.trust import default_trust
from tests.desktop.ui.conftest import PIN as GOOD_PIN
from tests.desktop.ui.conftest import RecordingPresenter
from tests.desktop.ui.keyboard import activate, press, type_text
from tests.e2e.conftest import Server
from tests.helpers.servers import free_port
from tests.sync_server.conftest import ADMIN_MOBILE, MBBS_MOBILE, last_otp, sign_in

ENTER = Qt.Key.Key_Return


def _main_window_ready(qtbot: QtBot, app: DesktopApp) -> None:
    qtbot.waitUntil(lambda: app.main_window is not None and app.main_window.isVisible())
    # A PC that never synced shows the first sync before anything else; it ends by itself here.
    qtbot.waitUntil(lambda: app.first_sync is None and app.sync_worker.is_active, timeout=10_000)
    assert app.main_window is not None
    activate(qtbot, app.main_window)


class TestFirstRun:
    def test_setup_signs_in_with_otp_sets_pin_and_enrols_the_pc(
        self,
        qtbot: QtBot,
        make_desktop: Callable[..., DesktopApp],
        server: Server,
        sandbox_url: str,
        device_secrets: SecretStore,
        presenter: RecordingPresenter,
    ) -> None:
        app = make_desktop()
        app.start()
        qtbot.waitUntil(lambda: app.setup_window is not None)
        window = app.setup_window
        assert window is not None
        activate(qtbot, window)
        assert window.current_step == SERVER

        type_text(qtbot, server.url, window.steps[SERVER].field)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == MOBILE)
        type_text(qtbot, MBBS_MOBILE.removeprefix("+91"), window.steps[MOBILE].field)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == OTP)
        type_text(qtbot, last_otp(sandbox_url, MBBS_MOBILE), window.steps[OTP].field)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == PIN, timeout=10_000)
        type_text(qtbot, GOOD_PIN, window.steps[PIN].field)
        press(qtbot, Qt.Key.Key_Tab)
        type_text(qtbot, GOOD_PIN, window.pin_repeat)
        with qtbot.waitSignal(window.signed_in, timeout=10_000) as signed_in:
            press(qtbot, ENTER)

        _main_window_ready(qtbot, app)
        user: Any = signed_in.args[0]
        assert user.name == "Dr. Ananya Sharma"
        enrolment = app.auth.enrolment()
        assert enrolment is not None and enrolment.server_url == server.url
        assert device_secrets.get(DEVICE_TOKEN)  # the device token is in the (test) keyring
        assert [u.has_pin for u in app.auth.known_users()] == [True]
        assert app.sync_status.status().has_synced  # the first sync ran as its own step
        assert presenter.shown == []
        # P4: the doctor's signing key was made on this PC at sign-in and certified by the server, so this PC
        # can now sign with no network; the QR verifies under the roots a pharmacist's verifier ships with.
        assert app.doctor_keys.is_certified(user.user_id)
        signed = app.signing.sign(user.user_id, sample_content(medicines=3))
        check = verify_qr_payload(signed.qr_payload, default_trust())
        assert check.valid and check.sandbox and check.doctor is not None and check.doctor.name == user.name

    def test_wrong_otp_is_shown_under_the_field(
        self, qtbot: QtBot, make_desktop: Callable[..., DesktopApp], server: Server, sandbox_url: str
    ) -> None:
        app = make_desktop(server_url=server.url)
        app.start()
        qtbot.waitUntil(lambda: app.setup_window is not None)
        window = app.setup_window
        assert window is not None
        activate(qtbot, window)
        assert window.steps[SERVER].field.text() == server.url  # from --server
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == MOBILE)
        type_text(qtbot, "12345", window.steps[MOBILE].field)
        press(qtbot, ENTER)
        assert window.steps[MOBILE].error.text() == "Mobile number must have 10 digits."
        press(qtbot, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        type_text(qtbot, MBBS_MOBILE)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == OTP)
        wrong = "000000" if last_otp(sandbox_url, MBBS_MOBILE) != "000000" else "111111"
        type_text(qtbot, wrong, window.steps[OTP].field)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.steps[OTP].error.has_message(), timeout=10_000)
        assert "OTP" in window.steps[OTP].error.text()
        assert window.current_step == OTP and app.auth.enrolment() is None

    def test_server_address_problems_are_shown_under_the_field(
        self, qtbot: QtBot, make_desktop: Callable[..., DesktopApp]
    ) -> None:
        app = make_desktop()
        app.start()
        qtbot.waitUntil(lambda: app.setup_window is not None)
        window = app.setup_window
        assert window is not None
        activate(qtbot, window)
        type_text(qtbot, "sync.example.org", window.steps[SERVER].field)
        press(qtbot, ENTER)
        assert window.steps[SERVER].error.text() == "The address must start with https:// (or http:// on a LAN)."
        press(qtbot, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        type_text(qtbot, f"http://127.0.0.1:{free_port()}")  # nothing listens there
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.steps[SERVER].error.has_message() and not window.is_busy, timeout=10_000)
        assert window.steps[SERVER].error.text() == UNREACHABLE_TEXT
        assert window.current_step == SERVER


class TestUnlockAndSync:
    def test_sync_status_follows_the_server_going_away_and_coming_back(
        self,
        qtbot: QtBot,
        make_desktop: Callable[..., DesktopApp],
        server: Server,
        enrolled_user: LocalUser,
    ) -> None:
        app = make_desktop()
        app.start()
        qtbot.waitUntil(lambda: app.unlock_dialog is not None)
        dialog = app.unlock_dialog
        assert dialog is not None
        activate(qtbot, dialog)
        type_text(qtbot, GOOD_PIN, dialog.pin_edit)
        press(qtbot, ENTER)
        _main_window_ready(qtbot, app)
        window = app.main_window
        assert window is not None
        status = window.sync_status
        qtbot.waitUntil(lambda: status.connection_text == "Online" and status.pending == 0)
        assert status.last_sync_label.text().startswith("Last synced ")

        server.stop()
        register_by_keyboard(qtbot, window, name="Kiran Offline", mobile="9812300077")
        qtbot.waitUntil(lambda: status.connection_text == "Offline" and status.pending == 1, timeout=10_000)
        assert status.waiting_label.text() == "1 change waiting"
        assert "No connection" in status.error_text
        register_by_keyboard(qtbot, window, name="Meena Offline", mobile="9812300078")
        qtbot.waitUntil(lambda: status.pending == 2 and not app.sync_worker.is_running, timeout=10_000)

        server.start()
        with qtbot.waitSignal(app.sync_worker.sync_finished, timeout=10_000):
            press(qtbot, Qt.Key.Key_F5)
        qtbot.waitUntil(lambda: status.pending == 0 and status.connection_text == "Online")
        assert status.waiting_label.text() == "All changes sent"
        assert status.error_text == ""
        assert status.last_sync_label.text().startswith("Last synced ")

    def test_sign_in_online_instead_of_the_pin_keeps_the_pin(
        self,
        qtbot: QtBot,
        make_desktop: Callable[..., DesktopApp],
        server: Server,
        sandbox_url: str,
        enrolled_user: LocalUser,
    ) -> None:
        app = make_desktop()
        app.start()
        qtbot.waitUntil(lambda: app.unlock_dialog is not None)
        dialog = app.unlock_dialog
        assert dialog is not None
        activate(qtbot, dialog)
        press(qtbot, Qt.Key.Key_O, Qt.KeyboardModifier.AltModifier)
        qtbot.waitUntil(lambda: app.setup_window is not None and app.unlock_dialog is None)
        window = app.setup_window
        assert window is not None
        activate(qtbot, window)
        assert window.current_step == MOBILE  # this PC's server is known
        type_text(qtbot, MBBS_MOBILE, window.steps[MOBILE].field)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == OTP)
        type_text(qtbot, last_otp(sandbox_url, MBBS_MOBILE), window.steps[OTP].field)
        press(qtbot, ENTER)
        qtbot.waitUntil(lambda: window.current_step == PIN, timeout=10_000)
        assert window.secondary(PIN).isVisible()  # the doctor has a PIN: keeping it is offered
        press(qtbot, Qt.Key.Key_K, Qt.KeyboardModifier.AltModifier)
        _main_window_ready(qtbot, app)
        assert app.user is not None and app.user.user_id == enrolled_user.user_id
        assert app.auth.unlock(enrolled_user.user_id, GOOD_PIN).name == "Dr. Ananya Sharma"

    def test_revoked_pc_asks_a_doctor_to_sign_in_again(
        self,
        qtbot: QtBot,
        make_desktop: Callable[..., DesktopApp],
        server: Server,
        sandbox_url: str,
        enrolled_user: LocalUser,
        device_secrets: SecretStore,
        presenter: RecordingPresenter,
    ) -> None:
        app = make_desktop()
        app.start()
        qtbot.waitUntil(lambda: app.unlock_dialog is not None)
        dialog = app.unlock_dialog
        assert dialog is not None
        activate(qtbot, dialog)
        type_text(qtbot, GOOD_PIN, dialog.pin_edit)
        press(qtbot, ENTER)
        _main_window_ready(qtbot, app)
        enrolment = app.auth.enrolment()
        assert enrolment is not None
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            admin = sign_in(http, sandbox_url, ADMIN_MOBILE)
            revoked = http.delete(f"/api/v1/devices/{enrolment.device_id}", headers=admin.headers)
            assert revoked.status_code == 204, revoked.text

        with qtbot.waitSignal(app.sync_worker.sign_in_required, timeout=10_000):
            press(qtbot, Qt.Key.Key_F5)
        qtbot.waitUntil(lambda: app.setup_window is not None and app.setup_window.isVisible())
        assert app.setup_window is not None
        assert app.setup_window.reason.text() == RESIGN_IN_REASON
        assert app.setup_window.current_step == MOBILE  # the server is known: straight to the doctor's mobile
        qtbot.waitUntil(lambda: device_secrets.get(DEVICE_TOKEN) is None)  # the refused token is forgotten
        assert "signed in again" in app.main_window.sync_status.error_text  # type: ignore[union-attr]
        assert [type(exc).__name__ for _parent, exc in presenter.shown] == ["DeviceSignInRequired"]


def register_by_keyboard(qtbot: QtBot, window: Any, *, name: str, mobile: str) -> None:
    """Ctrl+N, type name, Tab to sex (F), Tab to year, Tab to mobile, Enter; wait for the save."""
    press(qtbot, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    form = window.form
    type_text(qtbot, name, form.fields["name"])
    press(qtbot, Qt.Key.Key_Tab)
    type_text(qtbot, "F", form.fields["gender"])
    press(qtbot, Qt.Key.Key_Tab)
    type_text(qtbot, "1990", form.fields["year_of_birth"])
    press(qtbot, Qt.Key.Key_Tab)
    type_text(qtbot, mobile, form.fields["mobile"])
    with qtbot.waitSignal(form.saved, timeout=10_000):
        press(qtbot, ENTER)
