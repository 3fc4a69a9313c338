"""`BleWorker`: the one QObject that talks to the BLE thread (STYLE §2.5 "Devices").

bleak runs on its own asyncio loop thread (`desktop.devices.loop_thread.LoopThread`) inside a
`HealthDeviceReader`. The worker submits coroutines to that loop and re-emits what the reader reports as Qt
signals; the signals are emitted on the BLE thread and reach GUI-thread slots through queued connections.
Values are stored by the reader's sink (`desktop.services.readings.ReadingService`) on arrival, before any
signal is emitted, so closing a window or a crash of the UI loses nothing that already arrived.

Bluetooth that is off or absent is an expected state: `bluetooth_unavailable(message)` is emitted and the
rest of the app carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QObject, Signal

from desktop.devices.backend import BleBackend
from desktop.devices.errors import BluetoothUnavailable
from desktop.devices.loop_thread import LoopThread
from desktop.devices.payload import Payload, StoreOutcome
from desktop.devices.session import ConnectionState, FoundDevice, HealthDeviceReader, RetryPolicy, SessionReport
from desktop.errors import KnownError
from desktop.ui.signals import emit

logger = logging.getLogger(__name__)

T = TypeVar("T")

PAIR_LISTEN_S = 10.0
"""After pairing, stay connected this long (or until the device ends the session) to store what it sends."""


class DeviceStore(Protocol):
    """What the worker needs of `desktop.services.readings.ReadingService`."""

    def store(self, payload: Payload) -> StoreOutcome: ...

    def last_sequence(self, address: str) -> int | None: ...

    def set_battery(self, address: str, percent: int) -> None: ...

    def remember(self, address: str, name: str | None, services: list[str], *, paired: bool) -> Any: ...


class _Events:
    """`ReaderEvents` → the worker's signals (called on the BLE thread)."""

    def __init__(self, worker: BleWorker, store: DeviceStore) -> None:
        self._worker = worker
        self._store = store

    def device_found(self, device: FoundDevice) -> None:
        emit(self._worker.device_found, device)

    def state_changed(self, address: str, state: ConnectionState, detail: str) -> None:
        emit(self._worker.state_changed, address, str(state), detail)

    def payload_stored(self, payload: Payload, outcome: StoreOutcome) -> None:
        emit(self._worker.reading_stored, payload, outcome)

    def live_value(self, address: str, characteristic: str, data: bytes) -> None:
        emit(self._worker.live_value, address, characteristic, data)

    def battery_read(self, address: str, percent: int) -> None:
        try:
            self._store.set_battery(address, percent)
        except Exception:  # the battery level is a nicety; never stop a session for it
            logger.exception("could not save the battery level of %s", address)
        emit(self._worker.battery_read, address, percent)

    def progress(self, address: str, done: int, total: int) -> None:
        emit(self._worker.progress, address, done, total)


class BleWorker(QObject):
    """Scan, pair, read and download through the BLE loop thread; report through signals.

    Args:
        store: the reading service (the reader's sink, known devices).
        make_backend: builds the bleak backend (called once, lazily; `BleBackend.from_environment` in the app).
        retry: reconnect limits.
        parent: Qt parent.
    """

    device_found = Signal(object)  # FoundDevice
    scan_finished = Signal(object)  # list[FoundDevice]
    state_changed = Signal(str, str, str)  # address ("" for the adapter), ConnectionState value, detail
    reading_stored = Signal(object, object)  # Payload, StoreOutcome
    live_value = Signal(str, str, object)  # address, characteristic, bytes
    battery_read = Signal(str, int)
    progress = Signal(str, int, int)  # address, done, total
    session_finished = Signal(str, object)  # address, SessionReport
    session_failed = Signal(str, object)  # address, the exception (a KnownError unless it is a bug)
    bluetooth_unavailable = Signal(str)  # the message for the user
    busy_changed = Signal(bool)

    def __init__(
        self,
        store: DeviceStore,
        make_backend: Callable[[], BleBackend] = BleBackend.from_environment,
        *,
        retry: RetryPolicy | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._make_backend = make_backend
        self._retry = retry
        self._thread: LoopThread | None = None
        self._reader: HealthDeviceReader | None = None
        self._backend: BleBackend | None = None
        self._running: dict[str, Future[Any]] = {}

    def _ensure_reader(self) -> tuple[LoopThread, HealthDeviceReader]:
        if self._thread is None:
            self._thread = LoopThread()
        if self._reader is None:
            self._backend = self._make_backend()
            self._reader = HealthDeviceReader(self._backend, self._store, _Events(self, self._store), self._retry)
        return self._thread, self._reader

    def _start(self) -> tuple[LoopThread, HealthDeviceReader] | None:
        """The loop and reader, or None (after saying why) when the Bluetooth setting is unusable."""
        try:
            return self._ensure_reader()
        except ValueError as exc:  # INTEGMED_BLE_BACKEND names no backend
            emit(self.bluetooth_unavailable, f"Bluetooth is not set up correctly ({exc})")
            return None

    @property
    def is_busy(self) -> bool:
        return bool(self._running)

    def is_running(self, key: str) -> bool:
        return key in self._running

    def _track(self, key: str, future: Future[Any], on_done: Callable[[Future[Any]], None]) -> None:
        self._running[key] = future
        emit(self.busy_changed, True)

        def done(finished: Future[Any]) -> None:  # on the BLE thread
            self._running.pop(key, None)
            try:
                on_done(finished)
            finally:
                emit(self.busy_changed, bool(self._running))

        future.add_done_callback(done)

    def _fail(self, address: str, future: Future[Any]) -> bool:
        """Emit the failure of ``future`` if it failed; True when it did."""
        if future.cancelled():
            emit(self.state_changed, address, str(ConnectionState.IDLE), "Stopped.")
            return True
        exc = future.exception()
        if exc is None:
            return False
        if isinstance(exc, BluetoothUnavailable):
            emit(self.bluetooth_unavailable, exc.message)
        elif not isinstance(exc, KnownError):
            logger.error("BLE session with %s failed", address or "the adapter", exc_info=exc)
        emit(self.session_failed, address, exc)
        return True

    # -- commands (GUI thread) -------------------------------------------------------------------------------

    def scan(self, timeout_s: float = 8.0) -> None:
        """Look for health devices; `device_found` per device, then `scan_finished` (or a failure signal)."""
        if "scan" in self._running:
            return
        started = self._start()
        if started is None:
            return
        thread, reader = started

        def done(future: Future[Any]) -> None:
            if not self._fail("", future):
                emit(self.scan_finished, future.result())

        self._track("scan", thread.submit(reader.scan(timeout_s)), done)

    def read(
        self,
        address: str,
        *,
        name: str | None = None,
        services: list[str] | None = None,
        pair: bool = False,
        download: bool = True,
        listen_s: float | None = None,
    ) -> None:
        """Connect and store what the device sends (and new stored records); ``pair`` bonds first and
        remembers the device as known."""
        if address in self._running:
            return
        started = self._start()
        if started is None:
            return
        thread, reader = started

        async def session() -> SessionReport:
            report = await reader.read(address, name=name, pair=pair, download=download, listen_s=listen_s)
            if pair or services is not None:
                self._store.remember(address, name, services or [], paired=pair)
            return report

        def done(future: Future[Any]) -> None:
            if not self._fail(address, future):
                emit(self.session_finished, address, future.result())

        self._track(address, thread.submit(session()), done)

    def pair(self, device: FoundDevice) -> None:
        """Bond with a scanned device, remember it, and store whatever it sends meanwhile."""
        self.read(device.address, name=device.name, services=list(device.services), pair=True, listen_s=PAIR_LISTEN_S)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the BLE loop (bumble virtual devices for demos and tests share that loop)."""
        thread, _reader = self._ensure_reader()
        return thread.submit(coro)

    def stop(self, address: str) -> None:
        """Ask the session with ``address`` to disconnect."""
        if self._thread is not None and self._reader is not None:
            self._thread.loop.call_soon_threadsafe(self._reader.request_stop, address)

    def shutdown(self) -> None:
        """Stop sessions, close the bumble central (if any) and the loop thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        for future in list(self._running.values()):
            future.cancel()
        backend = self._backend
        if backend is not None and backend.central is not None:
            try:
                thread.submit(backend.central.close()).result(timeout=5)
            except Exception:
                logger.debug("closing the bumble central failed", exc_info=True)
        thread.stop()
