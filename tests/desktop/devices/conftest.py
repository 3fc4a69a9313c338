"""Fixtures for the BLE reader tests: a bumble LocalLink, a bumble-backed bleak backend, the real store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from bumble.link import LocalLink

from desktop.devices.backend import BleBackend
from desktop.devices.bumble_backend import BumbleCentral
from desktop.devices.payload import Payload, StoreOutcome
from desktop.devices.session import ConnectionState, FoundDevice, HealthDeviceReader, RetryPolicy
from desktop.services.readings import ReadingService
from desktop.store import LocalStore

T = TypeVar("T")


@dataclass
class RecordedEvents:
    """A `ReaderEvents` that keeps what it was told (thread-safe)."""

    found: list[FoundDevice] = field(default_factory=list)
    states: list[tuple[str, ConnectionState, str]] = field(default_factory=list)
    stored: list[tuple[Payload, StoreOutcome]] = field(default_factory=list)
    live: list[tuple[str, str, bytes]] = field(default_factory=list)
    battery: list[tuple[str, int]] = field(default_factory=list)
    progress_updates: list[tuple[str, int, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def device_found(self, device: FoundDevice) -> None:
        with self._lock:
            self.found.append(device)

    def state_changed(self, address: str, state: ConnectionState, detail: str) -> None:
        with self._lock:
            self.states.append((address, state, detail))

    def payload_stored(self, payload: Payload, outcome: StoreOutcome) -> None:
        with self._lock:
            self.stored.append((payload, outcome))

    def live_value(self, address: str, characteristic: str, data: bytes) -> None:
        with self._lock:
            self.live.append((address, characteristic, data))

    def battery_read(self, address: str, percent: int) -> None:
        with self._lock:
            self.battery.append((address, percent))

    def progress(self, address: str, done: int, total: int) -> None:
        with self._lock:
            self.progress_updates.append((address, done, total))

    def state_names(self) -> list[ConnectionState]:
        return [state for _, state, _ in self.states]


@dataclass
class Rig:
    """One test's virtual radio: the link, a bumble central behind bleak, the real reading service."""

    link: LocalLink
    backend: BleBackend
    service: ReadingService
    events: RecordedEvents
    delays: list[float]

    def reader(self, retry: RetryPolicy | None = None) -> HealthDeviceReader:
        async def no_wait(seconds: float) -> None:
            self.delays.append(seconds)

        return HealthDeviceReader(
            self.backend, self.service, self.events, retry or RetryPolicy(connect_timeout_s=5.0), sleep=no_wait
        )


@pytest.fixture
def reading_service(local_store: LocalStore) -> ReadingService:
    return ReadingService(local_store.uow, local_store.clock, actor="test")


@pytest.fixture
def rig(reading_service: ReadingService) -> Rig:
    link = LocalLink()  # type: ignore[no-untyped-call]
    return Rig(link, BleBackend.bumble(BumbleCentral.on_link(link)), reading_service, RecordedEvents(), [])


def run(rig: Rig, body: Callable[[], Awaitable[T]], timeout_s: float = 60.0) -> T:
    """Run ``body`` on a fresh event loop (the BLE thread's role), closing the central afterwards."""

    async def main() -> T:
        try:
            return await asyncio.wait_for(body(), timeout_s)
        finally:
            assert rig.backend.central is not None
            await rig.backend.central.close()

    return asyncio.run(main())


def values_of(row: Any) -> dict[str, str | None]:
    return {item["metric"]: item["value"] for item in row.values}
