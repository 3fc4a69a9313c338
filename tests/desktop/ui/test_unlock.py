"""Offline unlock: the right PIN unlocks, a wrong one says so with the tries left, too many lock with a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.store import LocalStore
from desktop.store.users import LocalUser, LocalUserRepository
from desktop.ui.runner import Runner
from desktop.ui.screens.unlock import UnlockDialog
from tests.desktop.ui.conftest import PIN, RecordingPresenter
from tests.desktop.ui.keyboard import activate, press, type_text

ENTER = Qt.Key.Key_Return
CLINIC = {"id": "019ab000-0000-7000-8000-000000000001", "name": "Sharma Family Clinic"}


def _no_network(url: str) -> object:
    raise AssertionError(f"offline unlock must not reach the network ({url})")


@pytest.fixture
def auth(local_store: LocalStore, device_secrets: SecretStore) -> AuthService:
    return AuthService(local_store.uow, device_secrets, _no_network)  # type: ignore[arg-type]


def _known_user(local_store: LocalStore, auth: AuthService, name: str, role: str) -> LocalUser:
    profile = {"id": str(uuid.uuid4()), "name": name, "role": role, "clinic": CLINIC, "hpr_id": None}

    def write() -> LocalUser:
        with local_store.uow.write() as uow:
            user = LocalUserRepository(uow.connection).upsert_profile(profile, now=datetime.now(UTC))
            uow.commit()
            return user

    user = local_store.writer.run(write)
    auth.set_pin(user.user_id, PIN)
    return user


@pytest.fixture
def users(local_store: LocalStore, auth: AuthService) -> list[LocalUser]:
    return [
        _known_user(local_store, auth, "Dr. Ananya Sharma", "doctor"),
        _known_user(local_store, auth, "Meera Iyer", "front_desk"),
    ]


@pytest.fixture
def dialog(
    qtbot: QtBot,
    ui_app: QApplication,
    local_store: LocalStore,
    auth: AuthService,
    users: list[LocalUser],
    presenter: RecordingPresenter,
) -> Iterator[UnlockDialog]:
    runner = Runner(local_store.writer.executor, error_presenter=presenter)
    known = sorted(auth.known_users(), key=lambda user: user.name)
    unlock = UnlockDialog(runner, auth, known, clinic_name=CLINIC["name"], error_presenter=presenter)
    qtbot.addWidget(unlock)
    activate(qtbot, unlock)
    yield unlock
    runner.shutdown()


def _try(qtbot: QtBot, dialog: UnlockDialog, pin: str) -> None:
    type_text(qtbot, pin, dialog.pin_edit)
    press(qtbot, ENTER)
    qtbot.waitUntil(lambda: dialog.unlock_button.text() != "Checking…")


class TestUnlock:
    def test_wrong_pin_then_the_right_one(
        self, qtbot: QtBot, dialog: UnlockDialog, users: list[LocalUser], presenter: RecordingPresenter
    ) -> None:
        assert dialog.selected_user_id == users[0].user_id  # the first user is chosen; the PIN has focus
        _try(qtbot, dialog, "135792")
        assert dialog.message == "That PIN is not right. 4 tries left before a pause."
        assert dialog.pin_edit.text() == "" and dialog.pin_error.isVisible()
        with qtbot.waitSignal(dialog.unlocked, timeout=5000) as unlocked:
            _try(qtbot, dialog, PIN)
        assert unlocked.args[0].name == "Dr. Ananya Sharma"
        assert unlocked.args[0].failed_attempts == 0
        assert presenter.shown == []

    def test_choose_another_user_with_the_arrow_keys(
        self, qtbot: QtBot, dialog: UnlockDialog, users: list[LocalUser]
    ) -> None:
        press(qtbot, Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
        assert QApplication.focusWidget() is dialog.user_list
        press(qtbot, Qt.Key.Key_Down)
        assert dialog.selected_user_id == users[1].user_id
        press(qtbot, Qt.Key.Key_Tab)
        with qtbot.waitSignal(dialog.unlocked, timeout=5000) as unlocked:
            _try(qtbot, dialog, PIN)
        assert unlocked.args[0].name == "Meera Iyer"

    def test_five_wrong_pins_lock_unlock_until_a_time(
        self, qtbot: QtBot, dialog: UnlockDialog, auth: AuthService, users: list[LocalUser]
    ) -> None:
        for attempt in range(4):
            _try(qtbot, dialog, f"97531{attempt}")
        assert dialog.message == "That PIN is not right. 1 try left before a pause."
        _try(qtbot, dialog, "975319")
        assert dialog.is_locked
        assert dialog.message.startswith("Too many wrong PINs were entered. Try again in 1 minute.")
        assert "Unlock opens again at " in dialog.message and "sign in online" in dialog.message
        # Enter does nothing while locked, even with the right PIN; online sign-in stays open.
        type_text(qtbot, PIN, dialog.pin_edit)
        press(qtbot, ENTER)
        assert dialog.is_locked
        stored = {user.user_id: user for user in auth.known_users()}[users[0].user_id]
        assert stored.failed_attempts == 5 and stored.locked_until is not None
        with qtbot.waitSignal(dialog.online_sign_in_requested):
            press(qtbot, Qt.Key.Key_O, Qt.KeyboardModifier.AltModifier)

    def test_a_locked_user_sees_the_lock_when_chosen(
        self, qtbot: QtBot, ui_app: QApplication, local_store: LocalStore, auth: AuthService, users: list[LocalUser]
    ) -> None:
        for attempt in range(5):
            with pytest.raises(Exception, match="PIN"):
                auth.unlock(users[1].user_id, f"86420{attempt}")
        runner = Runner(local_store.writer.executor)
        known = sorted(auth.known_users(), key=lambda user: user.name)
        dialog = UnlockDialog(runner, auth, known)
        qtbot.addWidget(dialog)
        try:
            dialog.user_list.setCurrentRow(1)
            assert dialog.is_locked and "Unlock opens again at" in dialog.message
            dialog.user_list.setCurrentRow(0)
            assert not dialog.is_locked and dialog.message == ""
        finally:
            runner.shutdown()
