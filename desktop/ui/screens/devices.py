"""`DevicesScreen`: Bluetooth health devices — known devices, scan, pair, forget, read, download records.

Keyboard (buttons show the same): F3 or Alt+S scan, Alt+P pair the selected nearby device, Enter or Alt+C
connect to the selected known device (store what it sends), Ctrl+R or Alt+D download new stored records,
Ctrl+. or Alt+T stop, Delete or Alt+F forget the selected known device. Tab moves between the two tables.

Readings attach to the patient open in the main window (`on_patient_opened`); with none open they are
stored unattached. Every value is saved by the BLE worker's sink the moment it arrives; this screen only
shows what happened. When Bluetooth is off or the PC has none, a banner says so and the rest keeps working.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.devices.errors import NO_BLUETOOTH_MESSAGE, BluetoothUnavailable
from desktop.devices.payload import Payload, StoreOutcome
from desktop.devices.session import FoundDevice, SessionReport
from desktop.services.readings import DeviceRow, ReadingService, summarize
from desktop.ui.bridges.ble_worker import BleWorker
from desktop.ui.error_dialogs import present_error
from desktop.ui.runner import PresentError, Runner
from desktop.ui.style import ERROR_COLOR
from shared.gatt import GattDecodeError, decode

KNOWN_COLUMNS = ("Device", "Kind", "Address", "Connection", "Battery", "Last reading")
NEARBY_COLUMNS = ("Device", "Kind", "Address", "Signal")
KIND_NAMES = {
    "180D": "Heart rate",
    "1810": "Blood pressure",
    "1809": "Thermometer",
    "1808": "Glucose",
    "1822": "Pulse oximeter",
    "181D": "Weight scale",
    "181B": "Body composition",
}


def _kinds(services: list[str] | tuple[str, ...]) -> str:
    return ", ".join(KIND_NAMES.get(s, s) for s in services) or "—"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%d %b %H:%M")


class DevicesScreen(QWidget):
    """The device screen.

    Args:
        runner: the app's runner (device list reads, forget).
        readings: the reading service (also the BLE worker's sink).
        worker: the BLE worker.
        error_presenter: where unexpected failures go.
        parent: Qt parent.
    """

    def __init__(
        self,
        runner: Runner,
        readings: ReadingService,
        worker: BleWorker,
        *,
        error_presenter: PresentError = present_error,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._readings = readings
        self._worker = worker
        self._present_error = error_presenter
        self._states: dict[str, str] = {}
        self._nearby: list[FoundDevice] = []
        self._rows: list[DeviceRow] = []
        self.setWindowTitle("IntegMed · Bluetooth devices")

        self.heading = QLabel("Bluetooth health devices", self)
        self.heading.setProperty("role", "heading")
        self.patient_label = QLabel(self)
        self.patient_label.setAccessibleName("Patient readings attach to")
        self.banner = QLabel(self)
        self.banner.setProperty("role", "error")
        self.banner.setStyleSheet(f"color: {ERROR_COLOR}; font-weight: 600;")
        self.banner.setWordWrap(True)
        self.banner.setAccessibleName("Bluetooth status")
        self.banner.hide()

        self.known = self._table(KNOWN_COLUMNS, "Known devices")
        self.nearby = self._table(NEARBY_COLUMNS, "Nearby devices")

        self.connect_button = QPushButton("&Connect and read", self)
        self.download_button = QPushButton("&Download records", self)
        self.stop_button = QPushButton("S&top", self)
        self.forget_button = QPushButton("&Forget", self)
        self.scan_button = QPushButton("&Scan", self)
        self.pair_button = QPushButton("&Pair", self)
        for button, tip in (
            (self.connect_button, "Enter"),
            (self.download_button, "Ctrl+R"),
            (self.stop_button, "Ctrl+."),
            (self.forget_button, "Delete"),
            (self.scan_button, "F3"),
            (self.pair_button, "Alt+P"),
        ):
            button.setToolTip(tip)

        self.progress = QProgressBar(self)
        self.progress.setAccessibleName("Stored-record download")
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status = QLabel("", self)
        self.status.setProperty("role", "hint")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Device status")
        self.log = QListWidget(self)
        self.log.setAccessibleName("Readings received")
        self.log.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        known_buttons = QHBoxLayout()
        for button in (self.connect_button, self.download_button, self.stop_button, self.forget_button):
            known_buttons.addWidget(button)
        known_buttons.addStretch(1)
        nearby_buttons = QHBoxLayout()
        for button in (self.scan_button, self.pair_button):
            nearby_buttons.addWidget(button)
        nearby_buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.patient_label)
        layout.addWidget(self.banner)
        layout.addWidget(self._caption("Known devices", self.known))
        layout.addWidget(self.known, 3)
        layout.addLayout(known_buttons)
        layout.addWidget(self._caption("Nearby health devices (scan)", self.nearby))
        layout.addWidget(self.nearby, 2)
        layout.addLayout(nearby_buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self._caption("Readings received", self.log))
        layout.addWidget(self.log, 2)

        self._shortcut("F3", self.on_scan_clicked)
        self._shortcut("Ctrl+R", self.on_download_clicked)
        self._shortcut("Ctrl+.", self.on_stop_clicked)
        self._connect_signals()
        self.set_current_patient(None)
        self._update_buttons()
        self.refresh()

    def _table(self, columns: tuple[str, ...], name: str) -> QTableWidget:
        table = QTableWidget(0, len(columns), self)
        table.setHorizontalHeaderLabels(list(columns))
        table.setAccessibleName(name)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setTabKeyNavigation(False)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        return table

    def _caption(self, text: str, buddy: QWidget) -> QLabel:
        label = QLabel(f"<b>{text}</b>", self)
        label.setBuddy(buddy)
        return label

    def _shortcut(self, key: str, slot: Any) -> None:
        shortcut = QShortcut(QKeySequence(key), self)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(slot)

    def _connect_signals(self) -> None:
        self.connect_button.clicked.connect(self.on_connect_clicked)
        self.download_button.clicked.connect(self.on_download_clicked)
        self.stop_button.clicked.connect(self.on_stop_clicked)
        self.forget_button.clicked.connect(self.on_forget_clicked)
        self.scan_button.clicked.connect(self.on_scan_clicked)
        self.pair_button.clicked.connect(self.on_pair_clicked)
        self.known.itemSelectionChanged.connect(self._update_buttons)
        self.nearby.itemSelectionChanged.connect(self._update_buttons)
        self.known.activated.connect(self.on_connect_clicked)
        self.nearby.activated.connect(self.on_pair_clicked)
        self._shortcut_on(self.known, "Delete", self.on_forget_clicked)
        w = self._worker
        w.device_found.connect(self.on_worker_device_found)
        w.scan_finished.connect(self.on_worker_scan_finished)
        w.state_changed.connect(self.on_worker_state_changed)
        w.reading_stored.connect(self.on_worker_reading_stored)
        w.progress.connect(self.on_worker_progress)
        w.live_value.connect(self.on_worker_live_value)
        w.battery_read.connect(self.on_worker_battery_read)
        w.session_finished.connect(self.on_worker_session_finished)
        w.session_failed.connect(self.on_worker_session_failed)
        w.bluetooth_unavailable.connect(self.on_worker_bluetooth_unavailable)
        w.busy_changed.connect(self._update_buttons)

    def _shortcut_on(self, widget: QWidget, key: str, slot: Any) -> None:
        shortcut = QShortcut(QKeySequence(key), widget)
        shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        shortcut.activated.connect(slot)

    # -- state -----------------------------------------------------------------------------------------------

    def set_current_patient(self, patient_id: uuid.UUID | None, name: str | None = None) -> None:
        """Readings from now on attach to this patient (None: kept unattached)."""
        self._readings.set_current_patient(patient_id)
        if patient_id is None:
            self.patient_label.setText("No patient is open: readings are saved but not attached to anyone.")
        else:
            self.patient_label.setText(f"Readings are attached to <b>{name or patient_id}</b> (the patient open now).")

    @Slot(object)
    def on_patient_opened(self, patient: Any) -> None:
        """The main window opened a patient (`PatientDetailScreen.loaded`)."""
        self.set_current_patient(patient.id, getattr(patient, "name", None))

    def selected_known(self) -> DeviceRow | None:
        row = self.known.currentRow()
        return self._rows[row] if 0 <= row < len(self._rows) and self.known.selectedItems() else None

    def selected_nearby(self) -> FoundDevice | None:
        row = self.nearby.currentRow()
        return self._nearby[row] if 0 <= row < len(self._nearby) and self.nearby.selectedItems() else None

    @Slot()
    def _update_buttons(self, *_: object) -> None:
        known = self.selected_known()
        running = known is not None and self._worker.is_running(known.device.address)
        self.connect_button.setEnabled(known is not None and not running)
        self.download_button.setEnabled(known is not None and not running and "1808" in known.device.services)
        self.stop_button.setEnabled(running)
        self.forget_button.setEnabled(known is not None and not running)
        self.scan_button.setEnabled(not self._worker.is_running("scan"))
        nearby = self.selected_nearby()
        self.pair_button.setEnabled(nearby is not None and not self._worker.is_running(nearby.address))

    def refresh(self) -> None:
        """Reload the known devices (off the GUI thread)."""
        self._runner.run_query(self, self._readings.list_devices, self._show_known)

    def _show_known(self, rows: list[DeviceRow]) -> None:
        selected = self.selected_known()
        self._rows = rows
        self.known.setRowCount(len(rows))
        for index, item in enumerate(rows):
            device = item.device
            last = item.last_reading
            cells = (
                device.name or "(no name)",
                _kinds(device.services),
                device.address,
                self._states.get(device.address, "paired" if device.paired else "known"),
                "—" if device.battery_percent is None else f"{device.battery_percent} %",
                "—" if last is None else f"{last.summary}  ({_when(last.received_at)})",
            )
            for column, text in enumerate(cells):
                self.known.setItem(index, column, QTableWidgetItem(text))
            if selected is not None and selected.device.address == device.address:
                self.known.selectRow(index)
        self._update_buttons()

    # -- commands --------------------------------------------------------------------------------------------

    @Slot()
    def on_scan_clicked(self) -> None:
        if self._worker.is_running("scan"):
            return
        self._nearby = []
        self.nearby.setRowCount(0)
        self.status.setText("Scanning for health devices…")
        self._worker.scan()
        self._update_buttons()

    @Slot()
    def on_pair_clicked(self) -> None:
        device = self.selected_nearby()
        if device is None:
            return
        self.status.setText(f"Pairing with {device.name or device.address}…")
        self._worker.pair(device)
        self._update_buttons()

    @Slot()
    def on_connect_clicked(self) -> None:
        row = self.selected_known()
        if row is not None:
            self._worker.read(row.device.address, name=row.device.name, download=False)
            self._update_buttons()

    @Slot()
    def on_download_clicked(self) -> None:
        row = self.selected_known()
        if row is not None and "1808" in row.device.services:
            self._worker.read(row.device.address, name=row.device.name, download=True, listen_s=0)
            self._update_buttons()

    @Slot()
    def on_stop_clicked(self) -> None:
        row = self.selected_known()
        if row is not None:
            self._worker.stop(row.device.address)

    @Slot()
    def on_forget_clicked(self) -> None:
        row = self.selected_known()
        if row is None or self._worker.is_running(row.device.address):
            return
        address = row.device.address
        self._runner.run_op(self, lambda: self._readings.forget(address), lambda _gone: self.refresh())
        self.status.setText(f"Forgot {row.device.name or address}. Its saved readings stay.")

    # -- worker events ---------------------------------------------------------------------------------------

    @Slot(object)
    def on_worker_device_found(self, device: FoundDevice) -> None:
        self._nearby.append(device)
        row = self.nearby.rowCount()
        self.nearby.insertRow(row)
        for column, text in enumerate(
            (device.name or "(no name)", _kinds(device.services), device.address, f"{device.rssi} dBm")
        ):
            self.nearby.setItem(row, column, QTableWidgetItem(text))
        if row == 0:
            self.nearby.selectRow(0)

    @Slot(object)
    def on_worker_scan_finished(self, found: list[FoundDevice]) -> None:
        self.banner.hide()
        self.status.setText(
            f"Scan finished: {len(found)} health device(s) nearby."
            if found
            else "No health devices found. Wake the device and scan again."
        )
        self._update_buttons()

    @Slot(str, str, str)
    def on_worker_state_changed(self, address: str, state: str, detail: str) -> None:
        if address:
            self._states[address] = state
            for index, item in enumerate(self._rows):
                if item.device.address == address:
                    self.known.setItem(index, 3, QTableWidgetItem(state))
        self.status.setText(detail)
        if state != "downloading" and address:
            self.progress.hide()

    @Slot(object, object)
    def on_worker_reading_stored(self, payload: Payload, outcome: StoreOutcome) -> None:
        when = payload.received_at.astimezone().strftime("%H:%M:%S")
        label = {"stored": "saved", "duplicate": "already saved", "ignored": "kept, not a patient value"}.get(
            outcome.status, outcome.status
        )
        self.log.insertItem(0, f"{when}  {payload.device_name or payload.address}  {outcome.summary}  — {label}")

    @Slot(str, str, object)
    def on_worker_live_value(self, address: str, characteristic: str, data: bytes) -> None:
        """Live values that are not stored (the cuff pressure while it inflates)."""
        try:
            self.status.setText(f"Live: {summarize(decode(characteristic, data), skip_missing=True)}")
        except GattDecodeError:
            self.status.setText(f"Live value from {address} could not be read ({data.hex(' ')}).")

    @Slot(str, int, int)
    def on_worker_progress(self, address: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done if total else 1)
        self.progress.setFormat(f"Stored records: {done} of {total}")
        self.progress.show()

    @Slot(str, int)
    def on_worker_battery_read(self, address: str, percent: int) -> None:
        for index, item in enumerate(self._rows):
            if item.device.address == address:
                self.known.setItem(index, 4, QTableWidgetItem(f"{percent} %"))

    @Slot(str, object)
    def on_worker_session_finished(self, address: str, report: SessionReport) -> None:
        self.refresh()

    @Slot(str, object)
    def on_worker_session_failed(self, address: str, exc: BaseException) -> None:
        if isinstance(exc, BluetoothUnavailable):
            return  # the banner says it
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if address:
            self._states[address] = "failed"
        self.status.setText(message)
        self.refresh()

    @Slot(str)
    def on_worker_bluetooth_unavailable(self, message: str) -> None:
        text = (message or NO_BLUETOOTH_MESSAGE).rstrip(".")
        self.banner.setText(f"{text}. Readings already saved stay; typing vitals by hand still works.")
        self.banner.show()
        self.status.setText("")
        self._update_buttons()
