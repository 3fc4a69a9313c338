"""Device readings by sync push: COPY ingest, dedupe on replay, partitions, daily averages, pull, rejections.

Real embedded PostgreSQL (native partitions: it has no TimescaleDB), the real app over its HTTP interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from shared.clock import Stamp, decode, encode, system_wall_ms
from shared.ids import uuid7
from shared.records.reading import Reading, ReadingValue, TimeSource, reading_change_fields
from shared.sync.protocol import Change
from sync_server.db import wearables as wearables_db
from sync_server.services import readings as readings_service
from sync_server.settings import Settings
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn
from tests.sync_server.test_sync_api import Device, new_patient

BP = {"bp_systolic": "mmHg", "bp_diastolic": "mmHg", "pulse_rate": "beats/min"}
UCUM = {"mmHg": "mm[Hg]", "beats/min": "/min", "%": "%", "°C": "Cel", "mg/dL": "mg/dL", "kg": "kg"}
UNITS = {"spo2": "%", "temperature": "°C", "glucose": "mg/dL", "weight": "kg", **BP}


def reading(
    patient_id: uuid.UUID,
    measured_at: datetime,
    values: dict[str, str],
    *,
    device_id: str = "AA:BB:CC:DD:EE:01",
    characteristic: str = "2A35",
    sequence: int | None = None,
    reading_id: uuid.UUID | None = None,
) -> Reading:
    return Reading(
        id=reading_id or uuid7(),
        patient_id=patient_id,
        device_id=device_id,
        device_name="Omron X4",
        characteristic=characteristic,
        measured_at=measured_at,
        device_time=measured_at.strftime("%Y-%m-%dT%H:%M:%S"),
        time_source=TimeSource.DEVICE_UTC,
        sequence=sequence,
        values=[
            ReadingValue(metric=m, value=Decimal(v), unit=UNITS[m], ucum=UCUM[UNITS[m]]) for m, v in values.items()
        ],
        raw_hex="00ff",
        received_at=measured_at + timedelta(minutes=1),
    )


def change(device: Device, r: Reading, **override: Any) -> dict[str, Any]:
    stamp = encode(device.clock.now())
    fields = {**reading_change_fields(r), **override}
    return {
        "kind": "reading",
        "id": str(r.id),
        "op": "upsert",
        "hlc": stamp,
        "fields": fields,
        "field_hlcs": dict.fromkeys(fields, stamp),
    }


def make_patient(device: Device) -> uuid.UUID:
    pid = uuid7()
    r = device.push([device.change(pid, new_patient())])
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied", r.text
    return pid


def statuses(response: Any) -> list[tuple[str, str | None]]:
    assert response.status_code == 200, response.text
    return [(r["status"], r["reason"]) for r in response.json()["results"]]


def query(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    result: list[asyncpg.Record] = pg.run(go())
    return result


def fold(settings: Settings) -> int:
    """Fold the queued days into the daily averages now (what the API's background folder does)."""

    async def go() -> int:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            return await readings_service.fold_daily(pool)
        finally:
            await pool.close()

    folded: int = pg.run(go())
    return folded


@contextlib.contextmanager
def folder_paused(settings: Settings) -> Iterator[None]:
    """Hold the fold lock on a connection of its own, so the API's background folder cannot fold meanwhile."""
    held, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", wearables_db.FOLD_LOCK)
            held.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait)
        finally:
            await conn.close()  # releases the lock

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert held.wait(30)
        yield
    finally:
        release.set()
        thread.join()


T0 = datetime(2026, 3, 10, 4, 30, tzinfo=UTC)


@pytest.fixture
def pc(api: TestClient, doctor: SignedIn) -> Device:
    return Device(api, doctor, "Nurse PC")


def test_ingest_then_replay_adds_nothing(pc: Device, settings: Settings) -> None:
    pid = make_patient(pc)
    batch = [
        change(pc, reading(pid, T0 + timedelta(hours=i), {"bp_systolic": "120", "bp_diastolic": "80"}))
        for i in range(5)
    ]
    first = pc.push(batch)
    assert statuses(first) == [("applied", None)] * 5
    assert all(r["server_version"] == 1 for r in first.json()["results"])
    count = "SELECT count(*) AS n, count(DISTINCT reading_id) AS readings FROM wearable_data"
    assert [tuple(r) for r in query(settings, count)] == [(10, 5)]
    # the same changes again, in a new batch: every one is "already have it", nothing is added
    assert statuses(pc.push(batch)) == [("applied", None)] * 5
    assert [tuple(r) for r in query(settings, count)] == [(10, 5)]
    # the same batch id again: the stored answer
    batch_id = str(uuid7())
    assert statuses(pc.push(batch, batch_id=batch_id)) == statuses(pc.push(batch, batch_id=batch_id))
    assert [tuple(r) for r in query(settings, count)] == [(10, 5)]


def test_natural_key_duplicate_under_another_id_is_not_stored(pc: Device, settings: Settings) -> None:
    pid = make_patient(pc)
    first = reading(pid, T0, {"glucose": "112"}, characteristic="2A18", sequence=41)
    again = first.model_copy(update={"id": uuid7()})  # a second PC downloaded the same meter record
    other = reading(pid, T0, {"glucose": "98"}, characteristic="2A18", sequence=42)
    assert statuses(pc.push([change(pc, first)])) == [("applied", None)]
    assert statuses(pc.push([change(pc, again), change(pc, other)])) == [("applied", None), ("applied", None)]
    rows = query(settings, "SELECT reading_id, value FROM wearable_data ORDER BY sequence")
    assert [(r["reading_id"], r["value"]) for r in rows] == [(first.id, 112.0), (other.id, 98.0)]
    # within one batch too: the first copy wins
    third = reading(pid, T0 + timedelta(days=1), {"glucose": "90"}, characteristic="2A18", sequence=43)
    twin = third.model_copy(update={"id": uuid7()})
    assert statuses(pc.push([change(pc, third), change(pc, twin)])) == [("applied", None), ("applied", None)]
    assert {r["reading_id"] for r in query(settings, "SELECT reading_id FROM wearable_data WHERE sequence = 43")} == {
        third.id
    }


def test_changing_or_deleting_a_stored_reading_is_rejected(pc: Device, settings: Settings) -> None:
    pid = make_patient(pc)
    r = reading(pid, T0, {"spo2": "97"}, characteristic="2A5E")
    assert statuses(pc.push([change(pc, r)])) == [("applied", None)]
    altered = change(
        pc, r.model_copy(update={"values": [ReadingValue(metric="spo2", value=Decimal(91), unit="%", ucum="%")]})
    )
    moved = change(pc, r.model_copy(update={"measured_at": T0 + timedelta(days=40)}))
    delete = {"kind": "reading", "id": str(r.id), "op": "delete", "hlc": encode(pc.clock.now())}
    response = pc.push([altered, moved, delete])
    assert statuses(response) == [("rejected", "signed_immutable")] * 3
    assert "cannot be changed" in response.json()["results"][0]["message"]
    assert "cannot be deleted" in response.json()["results"][2]["message"]
    rows = query(settings, "SELECT value, time FROM wearable_data")
    assert [(x["value"], x["time"]) for x in rows] == [(97.0, T0)]


def test_invalid_implausible_and_out_of_scope_readings_are_rejected(
    api: TestClient, pc: Device, other_clinic_doctor: SignedIn, settings: Settings
) -> None:
    pid = make_patient(pc)
    elsewhere = Device(api, other_clinic_doctor, "Other clinic PC")
    foreign = make_patient(elsewhere)
    good = reading(pid, T0, {"temperature": "37.2"}, characteristic="2A1C")
    implausible = reading(pid, T0, {"spo2": "127"}, characteristic="2A5E")
    unknown_metric = change(pc, reading(pid, T0, {"weight": "70"}, characteristic="2A9D"))
    unknown_metric["fields"]["values"][0]["metric"] = "aura_strength"
    future = reading(pid, datetime.now(UTC) + timedelta(days=3), {"weight": "70"}, characteristic="2A9D")
    unset_clock = reading(pid, datetime(1999, 12, 31, tzinfo=UTC), {"weight": "70"}, characteristic="2A9D")
    response = pc.push(
        [
            change(pc, implausible),
            change(pc, good),
            unknown_metric,
            change(pc, reading(foreign, T0, {"weight": "70"}, characteristic="2A9D")),
            change(pc, reading(uuid7(), T0, {"weight": "70"}, characteristic="2A9D")),
            change(pc, future),
            change(pc, unset_clock),
        ]
    )
    assert statuses(response) == [
        ("rejected", "invalid_record"),
        ("applied", None),
        ("rejected", "invalid_record"),
        ("rejected", "not_in_scope"),
        ("rejected", "invalid_record"),
        ("rejected", "invalid_record"),
        ("rejected", "invalid_record"),
    ]
    messages = [r["message"] for r in response.json()["results"]]
    assert "spo2 127 % is outside the plausible range 50-100 %" in messages[0]
    assert "aura_strength" in messages[2] and "metric vocabulary" in messages[2]
    assert "push the patient first" in messages[4]
    assert "in the future" in messages[5]
    assert "never set" in messages[6]
    assert [r["reading_id"] for r in query(settings, "SELECT reading_id FROM wearable_data")] == [good.id]
    bad_hex = pc.push([change(pc, reading(pid, T0, {"temperature": "36.9"}, characteristic="2A1C"), raw_hex="xyz")])
    assert statuses(bad_hex) == [("rejected", "invalid_record")]
    assert "raw_hex" in bad_hex.json()["results"][0]["message"]


def test_a_concurrently_stored_measurement_falls_back_to_on_conflict(pc: Device, settings: Settings) -> None:
    """The direct COPY is taken only after the lookup found nothing; if another push stored the same
    measurement meanwhile, the COPY's savepoint is rolled back and the INSERT … ON CONFLICT path keeps the
    first, and only the readings it stored have their days queued."""
    pid = make_patient(pc)
    r = reading(pid, T0, {"bp_systolic": "120", "bp_diastolic": "80"})
    assert statuses(pc.push([change(pc, r)])) == [("applied", None)]
    twin = r.model_copy(update={"id": uuid7()})  # the same measurement, as a concurrent push would bring it
    fresh = reading(pid, T0 + timedelta(hours=1), {"bp_systolic": "130", "bp_diastolic": "90"})
    clinic = query(settings, "SELECT clinic_id FROM patients WHERE id = $1", pid)[0]["clinic_id"]

    async def go() -> tuple[bool, set[uuid.UUID]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                layout = await wearables_db.prepare(conn, [T0])
                rows = []
                for item in (twin, fresh):
                    incoming = readings_service._validate(
                        0, Change.model_validate(change(pc, item)), datetime.now(UTC), system_wall_ms()
                    )
                    rows += readings_service._rows(incoming, clinic, uuid7())
                direct = await wearables_db.copy_direct(conn, rows)
                inserted = await wearables_db.insert(conn, rows)
                assert layout.mode == wearables_db.NATIVE
                await wearables_db.queue_daily(conn, clinic, [pid], [fresh.measured_at])
            return direct, inserted
        finally:
            await conn.close()

    direct, inserted = pg.run(go())
    assert not direct and inserted == {fresh.id}
    stored = query(settings, "SELECT DISTINCT reading_id FROM wearable_data")
    assert {x["reading_id"] for x in stored} == {r.id, fresh.id}
    fold(settings)
    daily = "SELECT avg, count FROM wearable_daily_avg WHERE metric = 'bp_systolic'"
    assert [tuple(x) for x in query(settings, daily)] == [(125.0, 2)]


def test_month_boundary_lands_in_two_partitions(pc: Device, settings: Settings) -> None:
    pid = make_patient(pc)
    late_jan = datetime(2025, 1, 31, 23, 59, tzinfo=UTC)  # an old month: its partition is made on demand
    early_feb = datetime(2025, 2, 1, 0, 1, tzinfo=UTC)
    batch = [change(pc, reading(pid, t, {"pulse_rate": "70"})) for t in (late_jan, early_feb)]
    assert statuses(pc.push(batch)) == [("applied", None)] * 2
    rows = query(
        settings,
        """
        SELECT w.time, w.tableoid::regclass::text AS part,
               (SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = w.tableoid) AS parent
        FROM wearable_data w ORDER BY w.time
        """,
    )
    assert [(r["time"], r["part"], r["parent"]) for r in rows] == [
        (late_jan, "wearable_data_p2025_01", "wearable_data"),
        (early_feb, "wearable_data_p2025_02", "wearable_data"),
    ]


def test_daily_average_is_fixed_by_a_late_reading(pc: Device, settings: Settings) -> None:
    pid = make_patient(pc)
    # 20:00 and 21:00 UTC on 9 March are 01:30 and 02:30 on 10 March in India: the clinic-local day counts
    day = [datetime(2026, 3, 9, 20, tzinfo=UTC), datetime(2026, 3, 9, 21, tzinfo=UTC)]
    pc.push([change(pc, reading(pid, t, {"bp_systolic": s})) for t, s in zip(day, ("120", "130"), strict=True)])
    daily = (
        "SELECT day::text, avg, min, max, count, unit FROM wearable_daily_avg WHERE metric = 'bp_systolic' ORDER BY day"
    )
    fold(settings)
    assert [tuple(r) for r in query(settings, daily)] == [("2026-03-10", 125.0, 120.0, 130.0, 2, "mmHg")]
    # weeks later a reading of that day arrives (the cuff was synced late), with one of a new day
    late = reading(pid, datetime(2026, 3, 10, 12, tzinfo=UTC), {"bp_systolic": "140"}, device_id="CUFF-2")
    newer = reading(pid, datetime(2026, 4, 2, 12, tzinfo=UTC), {"bp_systolic": "110"}, device_id="CUFF-2")
    assert statuses(pc.push([change(pc, late), change(pc, newer)])) == [("applied", None)] * 2
    fold(settings)
    assert [tuple(r) for r in query(settings, daily)] == [
        ("2026-03-10", 130.0, 120.0, 140.0, 3, "mmHg"),
        ("2026-04-02", 110.0, 110.0, 110.0, 1, "mmHg"),
    ]
    assert query(settings, "SELECT count(*) AS n FROM wearable_daily_pending")[0]["n"] == 0


def test_days_are_queued_in_the_push_and_folded_once(pc: Device, settings: Settings) -> None:
    """A push queues one row naming each patient's first and last reading time; folding recomputes those days
    (every metric) and empties the queue; a replay (new batch id or the same one) stores nothing and queues
    nothing; a second fold is a no-op."""
    fold(settings)  # whatever earlier tests left
    pid = make_patient(pc)
    other = make_patient(pc)
    times = [T0, T0 + timedelta(hours=1), T0 + timedelta(days=1)]
    batch = [change(pc, reading(pid, t, {"bp_systolic": "120", "bp_diastolic": "80"})) for t in times]
    batch.append(change(pc, reading(other, T0, {"spo2": "97"}, device_id="OXI-1", characteristic="2A5E")))
    batch_id = str(uuid7())
    with folder_paused(settings):
        assert statuses(pc.push(batch, batch_id=batch_id)) == [("applied", None)] * 4
        queued = query(
            settings,
            "SELECT k.patient_id, k.first, k.last"
            " FROM wearable_daily_pending p, unnest(p.patient_ids, p.firsts, p.lasts) AS k(patient_id, first, last)",
        )
        assert sorted((r["patient_id"], r["first"], r["last"]) for r in queued) == sorted(
            [(pid, T0, T0 + timedelta(days=1)), (other, T0, T0)]
        )
        assert statuses(pc.push(batch, batch_id=batch_id)) == [("applied", None)] * 4  # the stored answer
        assert statuses(pc.push(batch)) == [("applied", None)] * 4  # a new batch of the same readings
        assert query(settings, "SELECT count(*) AS n FROM wearable_daily_pending")[0]["n"] == 1
        assert query(settings, "SELECT count(*) AS n FROM wearable_daily_avg WHERE patient_id = $1", pid)[0]["n"] == 0
    fold(settings)
    assert fold(settings) == 0
    daily = "SELECT patient_id, metric, day::text, avg, count FROM wearable_daily_avg WHERE patient_id = ANY($1)"
    assert sorted(tuple(r) for r in query(settings, daily, [pid, other])) == sorted(
        [
            (pid, "bp_diastolic", "2026-03-10", 80.0, 2),
            (pid, "bp_systolic", "2026-03-10", 120.0, 2),
            (pid, "bp_diastolic", "2026-03-11", 80.0, 1),
            (pid, "bp_systolic", "2026-03-11", 120.0, 1),
            (other, "spo2", "2026-03-10", 97.0, 1),
        ]
    )


def test_refresh_patient_recomputes_its_queued_days_and_leaves_the_queue(pc: Device, settings: Settings) -> None:
    """What a health-graph page runs first: the patient's queued days are recomputed (the other patient's are
    not); the queue row stays for the folder, whose recomputation gives the same averages."""
    fold(settings)
    pid = make_patient(pc)
    other = make_patient(pc)
    batch = [
        change(pc, reading(pid, T0, {"bp_systolic": "150"})),
        change(pc, reading(other, T0, {"bp_systolic": "100"}, device_id="CUFF-9")),
    ]
    assert statuses(pc.push(batch)) == [("applied", None)] * 2

    clinic = query(settings, "SELECT clinic_id FROM patients WHERE id = $1", pid)[0]["clinic_id"]
    daily = "SELECT patient_id, avg, count FROM wearable_daily_avg WHERE patient_id = ANY($1)"

    async def go() -> tuple[list[tuple[Any, ...]], int]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                # Hold the fold lock (so the API's background folder waits) and start from both days unfolded.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", wearables_db.FOLD_LOCK)
                await conn.execute("DELETE FROM wearable_daily_avg WHERE patient_id = ANY($1)", [pid, other])
                await conn.execute("DELETE FROM wearable_daily_pending")
                await wearables_db.queue_daily(conn, clinic, [pid, other], [T0, T0])
                await readings_service.refresh_patient(conn, pid)
                averages = [tuple(r) for r in await conn.fetch(daily, [pid, other])]
                return averages, await wearables_db.pending_daily(conn)
        finally:
            await conn.close()

    averages, pending = pg.run(go())
    assert averages == [(pid, 150.0, 1)]
    assert pending == 1
    fold(settings)
    rows = {r["patient_id"]: (r["avg"], r["count"]) for r in query(settings, daily, [pid, other])}
    assert rows == {pid: (150.0, 1), other: (100.0, 1)}


def test_readings_reach_the_other_pc_by_pull(api: TestClient, doctor: SignedIn, pc: Device) -> None:
    other = Device(api, doctor, "Doctor PC")
    pid = make_patient(pc)
    r = reading(pid, T0, {"bp_systolic": "118.5", "bp_diastolic": "76", "pulse_rate": "64"})
    batch_id = str(uuid7())
    pc.push([change(pc, r)], batch_id=batch_id)
    pulled, _ = other.pull_all()
    kinds = [(c["kind"], c["id"]) for c in pulled]
    assert kinds == [("patient", str(pid)), ("reading", str(r.id))]
    got = pulled[1]
    assert got["fields"] == reading_change_fields(r)
    assert Reading.model_validate({**got["fields"], "id": got["id"]}) == r
    assert (got["op"], got["server_version"], got["batch_id"]) == ("upsert", 1, batch_id)
    assert set(got["field_hlcs"].values()) == {got["hlc"]}


def test_ready_reports_the_time_series_layout(api: TestClient) -> None:
    r = api.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["time_series"] == "native_partitions"


def test_a_stamp_too_far_ahead_is_refused_and_the_server_clock_passes_the_others(pc: Device) -> None:
    pid = make_patient(pc)
    ok = change(pc, reading(pid, T0, {"pulse_rate": "70"}))
    ahead = change(pc, reading(pid, T0 + timedelta(hours=1), {"pulse_rate": "71"}))
    ahead["hlc"] = encode(Stamp(system_wall_ms() + 60 * 60 * 1000, 0, "fastpc"))
    ahead["field_hlcs"] = dict.fromkeys(ahead["fields"], ahead["hlc"])
    later = change(pc, reading(pid, T0 + timedelta(hours=2), {"pulse_rate": "72"}))
    response = pc.push([ok, ahead, later])
    assert statuses(response) == [("applied", None), ("rejected", "clock_skew"), ("applied", None)]
    assert "ahead" in response.json()["results"][1]["message"]
    assert decode(response.json()["server_hlc"]) > max(decode(ok["hlc"]), decode(later["hlc"]))


def test_a_reading_at_the_clinic_midnight_counts_on_its_own_day(pc: Device, settings: Settings) -> None:
    pid = make_patient(pc)
    midnight = datetime(2026, 3, 9, 18, 30, tzinfo=UTC)  # 00:00 on 10 March in India
    times = [midnight - timedelta(microseconds=1), midnight, midnight + timedelta(microseconds=1)]
    batch = [
        change(pc, reading(pid, t, {"pulse_rate": p}, sequence=i))
        for i, (t, p) in enumerate(zip(times, ("60", "80", "90"), strict=True))
    ]
    assert statuses(pc.push(batch)) == [("applied", None)] * 3
    fold(settings)
    daily = "SELECT day::text, avg, count FROM wearable_daily_avg WHERE patient_id = $1 ORDER BY day"
    assert [tuple(r) for r in query(settings, daily, pid)] == [("2026-03-09", 60.0, 1), ("2026-03-10", 85.0, 2)]


def test_the_api_folds_queued_days_in_the_background(pc: Device, settings: Settings) -> None:
    """Nobody calls `fold_daily` here: the API's own folder (started in its lifespan) empties the queue."""
    pid = make_patient(pc)
    batch = [change(pc, reading(pid, T0 + timedelta(minutes=i), {"spo2": s})) for i, s in enumerate(("95", "99"))]
    assert statuses(pc.push(batch)) == [("applied", None)] * 2
    daily = "SELECT avg, count FROM wearable_daily_avg WHERE patient_id = $1 AND metric = 'spo2'"
    for _ in range(600):  # the folder runs about every second; give a loaded machine up to a minute
        if query(settings, daily, pid):
            break
        time.sleep(0.1)
    assert [tuple(r) for r in query(settings, daily, pid)] == [(97.0, 2)]


def test_a_stored_reading_sent_alone_again_is_caught_by_the_constraints(pc: Device, settings: Settings) -> None:
    """A batch of only well-formed readings takes the bulk path (no lookup): a stored id or measurement makes
    its COPY conflict, and the batch is then decided reading by reading, with the same answers."""
    pid = make_patient(pc)
    r = reading(pid, T0, {"spo2": "97"}, characteristic="2A5E")
    assert statuses(pc.push([change(pc, r)])) == [("applied", None)]
    altered = r.model_copy(update={"values": [ReadingValue(metric="spo2", value=Decimal(91), unit="%", ucum="%")]})
    moved = r.model_copy(update={"measured_at": T0 + timedelta(days=40), "received_at": T0 + timedelta(days=40)})
    fresh = reading(pid, T0 + timedelta(hours=2), {"spo2": "95"}, characteristic="2A5E")
    # same id and time, other value: the (reading_id, metric, time) constraint
    assert statuses(pc.push([change(pc, altered)])) == [("rejected", "signed_immutable")]
    # same id at another time (another month's partition): the feed's (kind, record_id) constraint
    assert statuses(pc.push([change(pc, moved), change(pc, fresh)])) == [
        ("rejected", "signed_immutable"),
        ("applied", None),
    ]
    # the same content under a new batch id: already stored
    assert statuses(pc.push([change(pc, r)])) == [("applied", None)]
    rows = query(settings, "SELECT reading_id, value, time FROM wearable_data ORDER BY time")
    assert [(x["reading_id"], x["value"], x["time"]) for x in rows] == [
        (r.id, 97.0, T0),
        (fresh.id, 95.0, T0 + timedelta(hours=2)),
    ]
    feed = query(settings, "SELECT record_id FROM change_feed WHERE kind = 'reading' ORDER BY seq")
    assert [x["record_id"] for x in feed] == [r.id, fresh.id]


def test_a_batch_in_chunks_stores_each_reading_once_whichever_chunk_finds_a_problem(
    pc: Device, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk path checks and COPYs a batch chunk by chunk. A batch with no problem is stored in feed order
    across chunks (and months); a problem found in a later chunk — a reading stored before, the same reading or
    measurement twice across chunks, an invalid reading — rolls back what earlier chunks wrote, and the batch is
    decided reading by reading: every reading stored once, the answers those of one batch."""
    monkeypatch.setattr(readings_service, "BULK_CHUNK", 2)
    pid = make_patient(pc)
    spo2 = [reading(pid, T0 + timedelta(hours=i), {"spo2": str(90 + i)}, characteristic="2A5E") for i in range(6)]
    spo2[5] = spo2[5].model_copy(update={"measured_at": T0 + timedelta(days=31)})  # the next month, last chunk
    count = "SELECT count(*) AS n FROM wearable_data"
    # no problem: 6 readings in 3 chunks
    assert statuses(pc.push([change(pc, r) for r in spo2])) == [("applied", None)] * 6
    feed = query(settings, "SELECT record_id FROM change_feed WHERE kind = 'reading' ORDER BY seq")
    assert [x["record_id"] for x in feed] == [r.id for r in spo2]

    def fresh(n: int, hours: int) -> list[Reading]:
        return [
            reading(pid, T0 + timedelta(hours=hours + i), {"temperature": "36.8"}, characteristic="2A1C")
            for i in range(n)
        ]

    # a stored reading in the second chunk: "already stored"; the first chunk's readings stored once
    batch = [*fresh(2, 100), spo2[3], *fresh(2, 110)]
    assert statuses(pc.push([change(pc, r) for r in batch])) == [("applied", None)] * 5
    assert query(settings, count)[0]["n"] == 6 + 4
    # the same reading in chunks 1 and 3, and the same measurement (other id, other metric) in chunks 1 and 2
    twice = fresh(3, 120)
    twin = twice[1].model_copy(
        update={"id": uuid7(), "values": [ReadingValue(metric="spo2", value=Decimal(95), unit="%", ucum="%")]}
    )
    batch = [twice[0], twice[1], twin, twice[2]]  # the twin's metric differs: no constraint would catch it
    assert statuses(pc.push([change(pc, r) for r in batch])) == [("applied", None)] * 4
    again = fresh(3, 125)
    assert statuses(pc.push([change(pc, r) for r in [*again, again[0]]])) == [("applied", None)] * 4
    window = "SELECT reading_id, metric FROM wearable_data WHERE time >= $1 AND time < $2"
    stored = query(settings, window, T0 + timedelta(hours=120), T0 + timedelta(hours=130))
    assert sorted((x["reading_id"], x["metric"]) for x in stored) == sorted(
        (r.id, "temperature") for r in [*twice, *again]
    )
    # an invalid reading in the last chunk
    batch = [change(pc, r) for r in fresh(4, 130)]
    batch.append(change(pc, reading(pid, T0 + timedelta(hours=140), {"spo2": "127"}, characteristic="2A5E")))
    assert statuses(pc.push(batch)) == [("applied", None)] * 4 + [("rejected", "invalid_record")]
    assert query(settings, count)[0]["n"] == 6 + 4 + 3 + 3 + 4
    ids = "SELECT count(*) AS n, count(DISTINCT record_id) AS distinct_ids FROM change_feed WHERE kind = 'reading'"
    assert tuple(query(settings, ids)[0]) == (20, 20)


def _mixed_readings(pid: uuid.UUID) -> list[Reading]:
    received = reading(pid, T0, {"weight": "71.4"}, characteristic="2A9D", device_id="SCALE-7").model_copy(
        update={"time_source": TimeSource.RECEIVED, "device_time": None, "received_at": T0}
    )
    fahrenheit = reading(pid, T0, {"temperature": "36.6"}, characteristic="2A1C").model_copy(
        update={
            "values": [
                ReadingValue(
                    metric="temperature",
                    value=Decimal("36.6"),
                    unit="°C",
                    ucum="Cel",
                    original_value=Decimal("97.9"),
                    original_unit="[degF]",
                )
            ],
            "encounter_id": uuid7(),
        }
    )
    return [
        reading(pid, T0, {"bp_systolic": "128", "bp_diastolic": "84", "pulse_rate": "71"}, sequence=9),
        received,
        fahrenheit,
        reading(pid, T0 + timedelta(days=31), {"glucose": "104.5"}, characteristic="2A18", sequence=0),
    ]


def test_bulk_rows_are_the_rows_of_the_per_reading_path(pc: Device) -> None:
    """`bulk_rows` gives, value for value, the rows `_rows` builds reading by reading."""
    pid, clinic, batch_id = uuid7(), uuid7(), uuid7()
    changes = [Change.model_validate(change(pc, r)) for r in _mixed_readings(pid)]
    bulk = readings_service.bulk_rows(changes, clinic, batch_id)
    assert bulk is not None
    each = [
        row
        for c in changes
        for row in readings_service._rows(
            readings_service._validate(0, c, datetime.now(UTC), system_wall_ms()), clinic, batch_id
        )
    ]

    def texts(row: tuple[Any, ...]) -> tuple[Any, ...]:  # ids may be UUIDs or their text: both encode the same
        return tuple(str(v) if isinstance(v, uuid.UUID) else v for v in row)

    assert [texts(r) for r in bulk.rows] == [texts(r) for r in each]
    assert len(bulk.rows) == 6 and bulk.patients == [pid]
    assert bulk.months == [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)]
    twice = readings_service.bulk_rows([*changes, changes[0]], clinic, batch_id)
    assert twice is None  # the same reading twice: decided reading by reading


def test_downgrade_of_0013_puts_back_hashes_and_answers_and_old_answers_still_replay(
    pc: Device, settings: Settings
) -> None:
    from sync_server.db import migrate

    pid = make_patient(pc)
    readings = _mixed_readings(pid)
    batch = [change(pc, r) for r in readings]
    batch_id = str(uuid7())
    first = pc.push(batch, batch_id=batch_id)
    assert statuses(first) == [("applied", None)] * 4
    stored = query(settings, "SELECT response FROM sync_batches WHERE batch_id = $1", uuid.UUID(batch_id))
    assert bytes(stored[0]["response"])[:1] != b"{"  # compressed by the server
    migrate.downgrade(settings.database_url, "2026_11_26_0012")
    hashes = query(settings, "SELECT DISTINCT reading_id, content_hash FROM wearable_data")
    expected = {
        r.id: readings_service._content_hash(readings_service.reading_facts(r))
        for r in (
            readings_service.reading_from_change_fields(r.id, reading_change_fields(r))  # as the server read it
            for r in readings
        )
    }
    assert {x["reading_id"]: bytes(x["content_hash"]) for x in hashes} == expected
    answer = query(settings, "SELECT response FROM sync_batches WHERE batch_id = $1", uuid.UUID(batch_id))
    assert json.loads(answer[0]["response"]) == first.json()  # jsonb again, the same answer
    migrate.upgrade(settings.database_url)
    assert query(settings, "SELECT count(*) AS n FROM wearable_data")[0]["n"] == 6
    # the answer stored as plain JSON (before the upgrade) is still the answer to a retry of the batch
    again = pc.push(batch, batch_id=batch_id)
    assert again.json() == first.json()


def test_0013_converts_queued_days_both_ways(settings: Settings) -> None:
    """Days queued when the migration runs are kept: ranges become (patient, metric, day) triples on downgrade
    (the metrics the patient has readings of that day) and one-day ranges again on upgrade."""
    from shared.clock import HLC
    from sync_server.db import migrate

    pid, clinic = uuid7(), uuid7()
    stamp = HLC("test").now()
    readings = [
        reading(pid, T0, {"bp_systolic": "120", "bp_diastolic": "80"}),
        reading(pid, T0 + timedelta(days=1), {"spo2": "97"}, characteristic="2A5E", device_id="OXI"),
    ]
    changes = [
        Change.model_validate(
            {
                "kind": "reading",
                "id": str(r.id),
                "op": "upsert",
                "hlc": encode(stamp),
                "fields": reading_change_fields(r),
                "field_hlcs": dict.fromkeys(reading_change_fields(r), encode(stamp)),
            }
        )
        for r in readings
    ]
    bulk = readings_service.bulk_rows(changes, clinic, uuid7())
    assert bulk is not None

    async def store() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                await wearables_db.prepare(conn, bulk.months)
                await conn.copy_records_to_table("wearable_data", records=bulk.rows, columns=wearables_db.COLUMNS)
                await wearables_db.queue_daily(conn, clinic, [pid, pid], [T0, T0 + timedelta(days=1)])
        finally:
            await conn.close()

    pg.run(store())
    migrate.downgrade(settings.database_url, "2026_11_26_0012")
    triples = query(
        settings,
        "SELECT k.patient_id, k.metric, k.day::text AS day"
        " FROM wearable_daily_pending p, unnest(p.patient_ids, p.metrics, p.days) AS k(patient_id, metric, day)",
    )
    assert sorted(tuple(r) for r in triples) == [
        (pid, "bp_diastolic", "2026-03-10"),
        (pid, "bp_systolic", "2026-03-10"),
        (pid, "spo2", "2026-03-11"),
    ]
    migrate.upgrade(settings.database_url)
    ranges = query(
        settings,
        "SELECT k.patient_id, k.first, k.last"
        " FROM wearable_daily_pending p, unnest(p.patient_ids, p.firsts, p.lasts) AS k(patient_id, first, last)",
    )
    ist_midnight = datetime(2026, 3, 9, 18, 30, tzinfo=UTC)  # 2026-03-10 00:00 in Asia/Kolkata
    assert sorted(tuple(r) for r in ranges) == [
        (pid, ist_midnight, ist_midnight),
        (pid, ist_midnight + timedelta(days=1), ist_midnight + timedelta(days=1)),
    ]
    folded = fold(settings)
    assert folded == 1
    daily = query(settings, "SELECT metric, day::text AS day, avg FROM wearable_daily_avg ORDER BY day, metric")
    assert [tuple(r) for r in daily] == [
        ("bp_diastolic", "2026-03-10", 80.0),
        ("bp_systolic", "2026-03-10", 120.0),
        ("spo2", "2026-03-11", 97.0),
    ]


def test_pulled_fields_are_the_models_change_fields(pc: Device, settings: Settings) -> None:
    """The pull builds a reading's fields straight from its rows: the same dict, key order included, as
    rebuilding the model and dumping it (microseconds, °F originals, encounter, time sources, sequences)."""
    pid = make_patient(pc)
    readings = [
        *_mixed_readings(pid),
        reading(pid, T0 + timedelta(microseconds=1), {"spo2": "97"}, characteristic="2A5E", device_id="OXI-7"),
    ]
    assert statuses(pc.push([change(pc, r) for r in readings])) == [("applied", None)] * 5
    rows = query(settings, "SELECT * FROM wearable_data ORDER BY reading_id, value_index")
    grouped: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row["reading_id"], []).append(row)
    for stored in grouped.values():
        fast = readings_service.pulled_fields(stored)
        slow = reading_change_fields(readings_service._fields_of(stored))
        assert fast == slow and list(fast) == list(slow)
    pushed = {r.id: reading_change_fields(r) for r in readings}
    assert {rid: readings_service.pulled_fields(rows) for rid, rows in grouped.items()} == pushed
