"""The device screen with the real BLE worker thread, bleak over bumble virtual devices, and the real store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from bumble.link import LocalLink
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from desktop.devices import sim as vp
from desktop.devices.backend import BleBackend
from desktop.devices.bumble_backend import BumbleCentral
from desktop.devices.errors import NO_BLUETOOTH_MESSAGE
from desktop.devices.session import RetryPolicy, is_bluetooth_unavailable
from desktop.services.readings import ReadingService
from desktop.store import LocalStore
from desktop.ui.bridges.ble_worker import BleWorker
from desktop.ui.runner import Runner
from desktop.ui.screens.devices import DevicesScreen
from tests.desktop.ui.keyboard import activate, press
from tests.desktop.ui.render import render_png

WAIT_MS = 30_000


@pytest.fixture
def readings(local_store: LocalStore) -> ReadingService:
    return ReadingService(local_store.uow, local_store.clock, actor="test")


@pytest.fixture
def runner(local_store: LocalStore) -> Iterator[Runner]:
    made = Runner(local_store.writer.executor)
    yield made
    made.shutdown(wait_s=10)


def _cell(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    assert item is not None
    return item.text()


def _screen(
    qtbot: QtBot, runner: Runner, readings: ReadingService, backend: BleBackend
) -> tuple[DevicesScreen, BleWorker]:
    worker = BleWorker(
        readings, lambda: backend, retry=RetryPolicy(max_attempts=2, first_delay_s=0.1, connect_timeout_s=5)
    )
    screen = DevicesScreen(runner, readings, worker)
    qtbot.addWidget(screen)
    screen.resize(1366, 768)
    activate(qtbot, screen)
    return screen, worker


class TestNoBluetooth:
    def test_missing_adapter_shows_the_clear_message_and_the_screen_keeps_working(
        self, qtbot: QtBot, runner: Runner, readings: ReadingService, artifacts_dir: Path
    ) -> None:
        backend = BleBackend.bumble(BumbleCentral.from_transport("serial:/nonexistent/integmed-no-such-adapter"))
        screen, worker = _screen(qtbot, runner, readings, backend)
        try:
            press(qtbot, Qt.Key.Key_F3)
            qtbot.waitUntil(lambda: screen.banner.isVisible(), timeout=WAIT_MS)
            assert NO_BLUETOOTH_MESSAGE in screen.banner.text()
            qtbot.waitUntil(lambda: screen.scan_button.isEnabled(), timeout=WAIT_MS)
            assert screen.isVisible()  # nothing crashed; scanning can be tried again
            render_png(artifacts_dir / "ui_devices_no_bluetooth.png", screen)
        finally:
            worker.shutdown()

    def test_os_stack_errors_that_mean_no_bluetooth_are_recognised(self) -> None:
        from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError

        assert is_bluetooth_unavailable(
            BleakBluetoothNotAvailableError("off", BleakBluetoothNotAvailableReason.POWERED_OFF)
        )
        assert is_bluetooth_unavailable(FileNotFoundError(2, "No such file or directory"))  # no system D-Bus
        assert not is_bluetooth_unavailable(BleakError("device not found"))


class TestWithVirtualDevices:
    def test_scan_pair_and_read_attach_the_reading_to_the_open_patient(
        self, qtbot: QtBot, runner: Runner, readings: ReadingService, artifacts_dir: Path
    ) -> None:
        link = LocalLink()  # type: ignore[no-untyped-call]
        screen, worker = _screen(qtbot, runner, readings, BleBackend.bumble(BumbleCentral.on_link(link)))
        patient_id = uuid.uuid4()
        try:
            screen.set_current_patient(patient_id, "Radha Devi")
            worker.submit(vp.bp_cuff(link).start()).result(timeout=10)
            peripheral, _meter = vp.glucometer(
                link, [vp.GlucoseRecord(n, vp.date_time(2026, 11, 20 + n, 8, 0, 0), 95 + n) for n in range(1, 4)]
            )
            worker.submit(peripheral.start()).result(timeout=10)

            press(qtbot, Qt.Key.Key_F3)
            qtbot.waitUntil(lambda: screen.nearby.rowCount() == 2 and screen.scan_button.isEnabled(), timeout=WAIT_MS)
            names = sorted(_cell(screen.nearby, r, 0) for r in range(2))
            assert names == ["BP Cuff", "Glucometer"]

            cuff_row = next(r for r in range(2) if _cell(screen.nearby, r, 0) == "BP Cuff")
            screen.nearby.selectRow(cuff_row)
            screen.nearby.setFocus()
            live: list[str] = []
            worker.live_value.connect(lambda *_: live.append(screen.status.text()))
            press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.AltModifier)
            qtbot.waitUntil(lambda: screen.known.rowCount() == 1 and screen.log.count() == 1, timeout=WAIT_MS)
            assert "Live: cuff 160 mmHg" in live  # the inflating cuff is shown, not stored
            stored = readings.list_for_patient(patient_id)
            assert [(r.characteristic, r.status) for r in stored] == [("2A35", "patient")]
            qtbot.waitUntil(lambda: "121" in _cell(screen.known, 0, 5), timeout=WAIT_MS)
            assert _cell(screen.known, 0, 4) == "55 %"  # battery

            meter_row = next(r for r in range(2) if _cell(screen.nearby, r, 0) == "Glucometer")
            screen.nearby.selectRow(meter_row)
            press(qtbot, Qt.Key.Key_P, Qt.KeyboardModifier.AltModifier)
            qtbot.waitUntil(lambda: screen.known.rowCount() == 2, timeout=WAIT_MS)
            meter = next(r for r in range(2) if _cell(screen.known, r, 0) == "Glucometer")
            # pairing already downloaded the three records; a new one appears on the meter, then Ctrl+R
            _meter.records.append(vp.GlucoseRecord(4, vp.date_time(2026, 11, 25, 9, 0, 0), 110))
            screen.known.selectRow(meter)
            screen.known.setFocus()
            qtbot.waitUntil(screen.download_button.isEnabled, timeout=WAIT_MS)
            press(qtbot, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
            qtbot.waitUntil(lambda: screen.progress.format() == "Stored records: 1 of 1", timeout=WAIT_MS)
            qtbot.waitUntil(lambda: not worker.is_busy, timeout=WAIT_MS)
            glucose = [r for r in readings.list_for_patient(patient_id) if r.characteristic == "2A18"]
            assert sorted(r.sequence or 0 for r in glucose) == [1, 2, 3, 4]
            assert _meter.requests[-2:] == [bytes.fromhex("0403010400"), bytes.fromhex("0103010400")]
            render_png(artifacts_dir / "ui_devices.png", screen)
        finally:
            worker.shutdown()


class TestMainWindowWiring:
    # offscreen platform noise: raise_() and size hints are real on a desktop
    @pytest.mark.qt_log_ignore("This plugin does not support raise", "This plugin does not support propagateSizeHints")
    def test_ctrl_shift_d_opens_the_screen_and_the_open_patient_receives_readings(
        self, qtbot: QtBot, runner: Runner, readings: ReadingService, local_store: LocalStore
    ) -> None:
        from desktop.errors import NotEnrolled
        from desktop.services.patients import PatientService
        from desktop.services.sync_status import SyncStatusService
        from desktop.ui.bridges.sync_worker import SyncRound, SyncWorker
        from desktop.ui.main_window import MainWindow

        def not_enrolled() -> SyncRound:
            raise NotEnrolled()

        patients = PatientService(writer=local_store.writer, uow=local_store.uow, clock=local_store.clock)
        patient = patients.register({"name": "Radha Devi", "gender": "F", "year_of_birth": 1980}, actor="test")
        sync = SyncWorker(
            runner, make_client=not_enrolled, probe=lambda: False, read_status=SyncStatusService(local_store.uow).status
        )
        worker = BleWorker(readings, BleBackend.system)
        screen = DevicesScreen(runner, readings, worker)
        main = MainWindow(runner, patients, sync, user_name="Dr. A", actor="test", devices_screen=screen)
        qtbot.addWidget(main)
        main.resize(1366, 768)
        activate(qtbot, main)
        try:
            main.show_patient(patient.id)
            qtbot.waitUntil(lambda: readings.current_patient()[0] == patient.id, timeout=WAIT_MS)
            assert "Radha Devi" in screen.patient_label.text()
            press(qtbot, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
            qtbot.waitUntil(screen.isVisible, timeout=WAIT_MS)
        finally:
            main.close()
            worker.shutdown()


class TestBadSetting:
    def test_unknown_backend_setting_is_reported_on_the_screen(
        self, qtbot: QtBot, runner: Runner, readings: ReadingService
    ) -> None:
        worker = BleWorker(readings, lambda: BleBackend.from_environment({"INTEGMED_BLE_BACKEND": "bluez"}))
        screen = DevicesScreen(runner, readings, worker)
        qtbot.addWidget(screen)
        activate(qtbot, screen)
        try:
            press(qtbot, Qt.Key.Key_F3)
            qtbot.waitUntil(screen.banner.isVisible, timeout=WAIT_MS)
            assert "INTEGMED_BLE_BACKEND='bluez'" in screen.banner.text()
            assert screen.scan_button.isEnabled()
        finally:
            worker.shutdown()
