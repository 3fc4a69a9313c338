"""A reading read over the (virtual) radio reaches the real server through the outbox and the sync push."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from desktop.devices import sim as vp
from desktop.devices.backend import BleBackend
from desktop.devices.bumble_backend import BumbleCentral
from desktop.devices.session import HealthDeviceReader, RetryPolicy
from desktop.services.readings import ReadingService
from sync_server.settings import Settings
from tests.desktop.devices.conftest import RecordedEvents
from tests.e2e.conftest import PC, make_pc, server, sqlite_template_e2e  # noqa: F401
from tests.sync_server.conftest import sandbox_url, settings  # noqa: F401


def _server_rows(settings: Settings, sql: str) -> list[asyncpg.Record]:  # noqa: F811
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_cuff_reading_is_pushed_once_as_an_append_only_reading(
    make_pc: Callable[..., PC],  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    pc = make_pc("pc-a")
    pc.enroll()
    assert pc.store is not None
    patient = pc.patients.register({"name": "Radha Devi", "gender": "F", "year_of_birth": 1980}, actor="test")
    service = ReadingService(pc.store.uow, pc.store.clock, actor="test")
    service.set_current_patient(patient.id)

    async def read_cuff() -> Any:
        from bumble.link import LocalLink

        link = LocalLink()  # type: ignore[no-untyped-call]
        backend = BleBackend.bumble(BumbleCentral.on_link(link))
        cuff = await vp.bp_cuff(link, repeat=2).start()
        try:
            return await HealthDeviceReader(backend, service, RecordedEvents(), RetryPolicy()).read(cuff.address)
        finally:
            assert backend.central is not None
            await backend.central.close()

    report = asyncio.run(read_cuff())
    assert (report.stored, report.duplicates) == (1, 1)
    sync = pc.sync()
    assert sync.rejected == [] and sync.pending == 0
    [row] = service.list_for_patient(patient.id)
    stored = _server_rows(
        settings, f"SELECT reading_id, patient_id, value FROM wearable_data WHERE reading_id = '{row.id}'"
    )
    assert {str(r["patient_id"]) for r in stored} == {str(patient.id)}
    assert len(stored) == 4  # systolic, diastolic, mean arterial pressure, pulse: one row per value
    again = pc.sync()
    assert again.pushed == 0
