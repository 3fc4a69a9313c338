"""`HealthDeviceReader`: scan, connect, subscribe, download stored records, and hand every value on at once.

Plain asyncio on the BLE loop thread (`loop_thread.py`); no Qt, no database. What arrives is handed to a
`ReadingSink` *synchronously inside the notification callback*, so a value is on disk before the reader
does anything else — a cuff or meter may switch its radio off right after sending (reference §2.4). Progress
and connection state go to a `ReaderEvents` (the Qt bridge re-emits them as signals).

Reconnects: a connection attempt that fails is retried with exponential backoff up to
`RetryPolicy.max_attempts`; so is a stored-record download the device broke off. After the last attempt the
state is ``failed`` with the reason. A device that disconnects after sending is the normal end of a session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from desktop.devices import profiles, racp
from desktop.devices.backend import BleBackend
from desktop.devices.errors import NO_BLUETOOTH_MESSAGE, BluetoothUnavailable, DeviceUnreachable, RecordDownloadFailed
from desktop.devices.payload import Payload, StoreOutcome

logger = logging.getLogger(__name__)

_NO_STACK_DBUS_ERRORS = ("org.bluez.Error.NotReady", "org.freedesktop.DBus.Error.ServiceUnknown")


class ConnectionState(StrEnum):
    IDLE = "idle"
    SCANNING = "scanning"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DOWNLOADING = "downloading"
    RETRYING = "retrying"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    UNAVAILABLE = "bluetooth unavailable"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the reader tries to reach a device.

    Args:
        max_attempts: connection attempts (the first one included) before giving up.
        first_delay_s: wait before the second attempt; doubles each time up to ``max_delay_s``.
        max_delay_s: the longest wait between attempts.
        connect_timeout_s: one attempt's time limit (finding the device + connecting).
        racp_timeout_s: the longest wait for a RACP answer.
    """

    max_attempts: int = 3
    first_delay_s: float = 1.0
    max_delay_s: float = 15.0
    connect_timeout_s: float = 20.0
    racp_timeout_s: float = 30.0

    def delay_before(self, attempt: int) -> float:
        """The wait before attempt number ``attempt`` (2, 3, …)."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 2)))


class ReadingSink(Protocol):
    """Where values go; `store` runs on the BLE loop thread and returns once the value is committed."""

    def store(self, payload: Payload) -> StoreOutcome: ...

    def last_sequence(self, address: str) -> int | None: ...


class ReaderEvents(Protocol):
    """What the reader reports; called on the BLE loop thread (implementations must be thread-safe)."""

    def device_found(self, device: FoundDevice) -> None: ...

    def state_changed(self, address: str, state: ConnectionState, detail: str) -> None: ...

    def payload_stored(self, payload: Payload, outcome: StoreOutcome) -> None: ...

    def live_value(self, address: str, characteristic: str, data: bytes) -> None: ...

    def battery_read(self, address: str, percent: int) -> None: ...

    def progress(self, address: str, done: int, total: int) -> None: ...


@dataclass(frozen=True)
class FoundDevice:
    """A health device seen in a scan."""

    address: str
    name: str | None
    services: tuple[str, ...]  # short UUIDs of the health services it advertises
    rssi: int

    @property
    def kinds(self) -> str:
        return ", ".join(profiles.SERVICE_NAMES.get(profiles.sig(int(s, 16)), s) for s in self.services) or "—"


@dataclass
class SessionReport:
    """What one session did."""

    address: str
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    attempts: int = 0
    battery_percent: int | None = None
    device_clock_hex: str | None = None
    records_expected: int | None = None
    records_received: int = 0
    ended_by_device: bool = False
    outcomes: list[StoreOutcome] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    failed: asyncio.Event = field(default_factory=asyncio.Event)


def is_bluetooth_unavailable(exc: BaseException) -> bool:
    """True for the errors that mean "no usable Bluetooth on this PC" (not "this device did not answer")."""
    if isinstance(exc, BluetoothUnavailable | BleakBluetoothNotAvailableError):
        return True
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error in _NO_STACK_DBUS_ERRORS
    # BlueZ backend with no system D-Bus (no bluetoothd; containers, minimal Linux installs)
    return isinstance(exc, FileNotFoundError | ConnectionRefusedError)


def _unavailable(exc: BaseException) -> BluetoothUnavailable:
    return BluetoothUnavailable(NO_BLUETOOTH_MESSAGE + ".", detail=f"{type(exc).__name__}: {exc}")


class HealthDeviceReader:
    """Scans for and reads Bluetooth SIG health devices through bleak.

    Args:
        backend: which bleak backend (OS or bumble).
        sink: stores values as they arrive.
        events: receives state, progress and stored values.
        retry: reconnect and timeout limits.
        sleep: how to wait between attempts (tests pass a recording one).
    """

    def __init__(
        self,
        backend: BleBackend,
        sink: ReadingSink,
        events: ReaderEvents,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._backend = backend
        self._sink = sink
        self._events = events
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._stop: dict[str, asyncio.Event] = {}

    # -- scanning --------------------------------------------------------------------------------------------

    async def scan(self, timeout_s: float = 8.0) -> list[FoundDevice]:
        """Devices advertising a health service, strongest signal first.

        Raises:
            BluetoothUnavailable: no adapter, adapter off, or no Bluetooth service.
        """
        found: dict[str, FoundDevice] = {}

        def seen(device: BLEDevice, adv: AdvertisementData) -> None:
            services = tuple(profiles.short_uuid(u) for u in adv.service_uuids if u.lower() in profiles.HEALTH_SERVICES)
            item = FoundDevice(device.address, adv.local_name or device.name, services, adv.rssi)
            is_new = device.address not in found
            found[device.address] = item
            if is_new:
                self._events.device_found(item)

        self._events.state_changed("", ConnectionState.SCANNING, "Scanning for health devices…")
        try:
            scanner = BleakScanner(
                seen, service_uuids=list(profiles.HEALTH_SERVICES), **dict(self._backend.scanner_kwargs)
            )
            await scanner.start()
            try:
                await asyncio.sleep(timeout_s)
            finally:
                await scanner.stop()
        except Exception as exc:
            if is_bluetooth_unavailable(exc):
                self._events.state_changed("", ConnectionState.UNAVAILABLE, NO_BLUETOOTH_MESSAGE)
                raise _unavailable(exc) from exc
            raise
        self._events.state_changed("", ConnectionState.IDLE, f"Scan finished: {len(found)} device(s) found.")
        return sorted(found.values(), key=lambda d: -d.rssi)

    # -- a session -------------------------------------------------------------------------------------------

    def request_stop(self, address: str) -> None:
        """Ask a running session with ``address`` to disconnect (call on the loop thread)."""
        event = self._stop.get(address)
        if event is not None:
            event.set()

    async def read(
        self,
        address: str,
        *,
        name: str | None = None,
        pair: bool = False,
        download: bool = True,
        listen_s: float | None = None,
    ) -> SessionReport:
        """Connect to ``address``, store what it sends, download new stored records; retry within limits.

        The session ends when the device disconnects after sending (the normal end), when `request_stop`
        is called, or after ``listen_s`` seconds connected (None: until one of the other two).

        Raises:
            BluetoothUnavailable: no usable Bluetooth.
            DeviceUnreachable: every attempt failed (the state is ``failed``).
            RecordDownloadFailed: the meter refused the download (not retried).
        """
        report = SessionReport(address)
        stop = self._stop.setdefault(address, asyncio.Event())
        stop.clear()
        last_error = ""
        try:
            for attempt in range(1, self._retry.max_attempts + 1):
                report.attempts = attempt
                if attempt > 1:
                    delay = self._retry.delay_before(attempt)
                    self._events.state_changed(
                        address,
                        ConnectionState.RETRYING,
                        f"Attempt {attempt} of {self._retry.max_attempts} in {delay:g} s ({last_error})",
                    )
                    await self._sleep(delay)
                    if stop.is_set():
                        break
                try:
                    complete = await self._attempt(address, name, pair, download, listen_s, stop, report)
                except RecordDownloadFailed as exc:
                    self._events.state_changed(address, ConnectionState.FAILED, exc.message)
                    raise
                except (BleakError, TimeoutError, OSError, EOFError) as exc:
                    if is_bluetooth_unavailable(exc):
                        self._events.state_changed(address, ConnectionState.UNAVAILABLE, NO_BLUETOOTH_MESSAGE)
                        raise _unavailable(exc) from exc
                    last_error = str(exc) or type(exc).__name__
                    logger.info("attempt %d with %s failed: %s", attempt, address, last_error)
                    continue
                except Exception as exc:
                    self._events.state_changed(address, ConnectionState.FAILED, f"Stopped: {exc}")
                    raise
                if complete:
                    detail = f"{report.stored} new reading(s) saved"
                    if report.duplicates:
                        detail += f", {report.duplicates} already saved"
                    if report.ended_by_device:
                        detail += "; the device ended the session"
                    self._events.state_changed(address, ConnectionState.DISCONNECTED, detail + ".")
                    return report
                last_error = "the device disconnected during the download"
            else:
                message = f"No connection after {self._retry.max_attempts} attempts: {last_error}."
                self._events.state_changed(address, ConnectionState.FAILED, message)
                raise DeviceUnreachable(message, detail=last_error)
            self._events.state_changed(address, ConnectionState.DISCONNECTED, "Stopped.")
            return report
        finally:
            self._stop.pop(address, None)

    async def _find(self, address: str) -> BLEDevice:
        device = await BleakScanner.find_device_by_address(
            address, timeout=self._retry.connect_timeout_s, **dict(self._backend.scanner_kwargs)
        )
        if device is None:
            raise BleakError(f"{address} was not found (is it on and in range?)")
        return device

    async def _attempt(
        self,
        address: str,
        name: str | None,
        pair: bool,
        download: bool,
        listen_s: float | None,
        stop: asyncio.Event,
        report: SessionReport,
    ) -> bool:
        """One connection; True when the session finished (download, if any, complete)."""
        self._events.state_changed(address, ConnectionState.CONNECTING, f"Connecting to {name or address}…")
        device = await self._find(address)
        dropped = asyncio.Event()
        client = BleakClient(
            device,
            disconnected_callback=lambda _client: dropped.set(),
            timeout=self._retry.connect_timeout_s,
            pair=pair,
            **dict(self._backend.client_kwargs),
        )
        device_name = name or device.name
        await client.connect()
        try:
            self._events.state_changed(address, ConnectionState.CONNECTED, f"Connected to {device_name or address}.")
            await self._read_status(client, address, report)
            subscribed = await self._subscribe(client, address, device_name, report)
            download_complete = True
            if (
                download
                and client.services.get_characteristic(profiles.RECORD_ACCESS_CONTROL_POINT)
                and (profiles.GLUCOSE_MEASUREMENT in subscribed)
            ):
                download_complete = await self._download(client, address, dropped, report)
            if not download_complete:
                return False
            waiters = [
                asyncio.ensure_future(dropped.wait()),
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(report.failed.wait()),
            ]
            try:
                await asyncio.wait(waiters, timeout=listen_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            report.ended_by_device = dropped.is_set()
            if report.errors:
                raise report.errors[0]
            return True
        finally:
            if client.is_connected:
                try:
                    await client.disconnect()
                except (BleakError, OSError):
                    logger.debug("disconnect from %s failed", address, exc_info=True)

    async def _read_status(self, client: BleakClient, address: str, report: SessionReport) -> None:
        battery = client.services.get_characteristic(profiles.BATTERY_LEVEL)
        if battery is not None and "read" in battery.properties:
            try:
                value = await client.read_gatt_char(battery)
            except BleakError:
                logger.info("battery level of %s could not be read", address)
            else:
                if value:
                    report.battery_percent = int(value[0])
                    self._events.battery_read(address, int(value[0]))
        clock = client.services.get_characteristic(profiles.CURRENT_TIME)
        if clock is not None and "read" in clock.properties:
            try:
                report.device_clock_hex = bytes(await client.read_gatt_char(clock)).hex()
            except BleakError:
                logger.info("current time of %s could not be read", address)

    async def _subscribe(
        self, client: BleakClient, address: str, device_name: str | None, report: SessionReport
    ) -> set[str]:
        subscribed: set[str] = set()
        for uuid in profiles.MEASUREMENTS:
            characteristic = client.services.get_characteristic(uuid)
            if characteristic is None or not {"notify", "indicate"} & set(characteristic.properties):
                continue
            await client.start_notify(characteristic, self._handler(address, device_name, report))
            subscribed.add(uuid)
        return subscribed

    def _handler(
        self, address: str, device_name: str | None, report: SessionReport
    ) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def on_value(characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            short = profiles.short_uuid(characteristic.uuid)
            if characteristic.uuid in profiles.LIVE_ONLY:
                self._events.live_value(address, short, bytes(data))
                return
            payload = Payload(
                address,
                device_name,
                short,
                bytes(data),
                datetime.now(UTC),
                stored_record=report.records_expected is not None,
            )
            try:
                outcome = self._sink.store(payload)  # committed before anything else happens
            except Exception as exc:  # disk full, database locked…: the session must stop and say so
                logger.exception("storing a value from %s failed", address)
                report.errors.append(exc)
                report.failed.set()
                return
            report.outcomes.append(outcome)
            if outcome.status == "stored":
                report.stored += 1
            elif outcome.status == "duplicate":
                report.duplicates += 1
            else:
                report.ignored += 1
            if characteristic.uuid == profiles.GLUCOSE_MEASUREMENT and report.records_expected is not None:
                report.records_received += 1
                self._events.progress(address, report.records_received, report.records_expected)
            self._events.payload_stored(payload, outcome)

        return on_value

    async def _download(self, client: BleakClient, address: str, dropped: asyncio.Event, report: SessionReport) -> bool:
        """RACP: count, then report records ≥ last stored sequence + 1. False if the link dropped meanwhile."""
        answers: asyncio.Queue[bytes] = asyncio.Queue()
        control = client.services.get_characteristic(profiles.RECORD_ACCESS_CONTROL_POINT)
        assert control is not None
        await client.start_notify(control, lambda _c, data: answers.put_nowait(bytes(data)))
        last = self._sink.last_sequence(address)
        first = None if last is None else last + 1
        if first is not None and first > 0xFFFF:
            first = None  # the meter's counter wrapped: ask for everything; the natural key drops duplicates
        self._events.state_changed(
            address,
            ConnectionState.DOWNLOADING,
            "Counting stored records…" if first is None else f"Counting records from number {first}…",
        )

        async def ask(request: bytes) -> racp.Response | None:
            await client.write_gatt_char(control, request, response=True)
            get = asyncio.ensure_future(answers.get())
            drop = asyncio.ensure_future(dropped.wait())
            try:
                done, _ = await asyncio.wait(
                    [get, drop], timeout=self._retry.racp_timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                drop.cancel()
            if get not in done:
                get.cancel()
                if dropped.is_set():
                    return None
                raise TimeoutError("the meter did not answer the record request")
            return racp.parse(get.result())

        counted = await ask(racp.report_number(first))
        if counted is None:
            return False
        if counted.count is None and not counted.is_no_records:
            raise RecordDownloadFailed(f"The meter refused to count its records: {counted.describe()}.")
        total = counted.count or 0
        report.records_expected = total
        report.records_received = 0
        self._events.progress(address, 0, total)
        if total == 0:
            self._events.state_changed(address, ConnectionState.CONNECTED, "No new stored records.")
            return True
        self._events.state_changed(address, ConnectionState.DOWNLOADING, f"Downloading {total} stored record(s)…")
        finished = await ask(racp.report_records(first))
        if finished is None:
            return False
        if not (finished.is_success or finished.is_no_records):
            raise RecordDownloadFailed(f"The meter stopped the download: {finished.describe()}.")
        self._events.state_changed(
            address, ConnectionState.CONNECTED, f"Downloaded {report.records_received} stored record(s)."
        )
        return True
