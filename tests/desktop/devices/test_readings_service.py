"""`ReadingService` on a real store: dedupe by natural key, attachment, exclusions, the outbox entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from desktop.devices import sim as vp
from desktop.devices.payload import Payload
from desktop.services.readings import ReadingService
from desktop.store import LocalStore
from shared.records.reading import reading_from_change_fields
from shared.sync.protocol import JsonValue

CUFF = "C0:00:00:00:00:02"
T0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


def _payload(characteristic: str, data: bytes, at: datetime = T0, address: str = CUFF) -> Payload:
    return Payload(address, "BP Cuff", characteristic, data, at)


def _outbox(store: LocalStore) -> list[tuple[str, uuid.UUID, dict[str, JsonValue]]]:
    with store.uow.read() as uow:
        return [(e.kind, e.record_id, e.fields) for e in uow.outbox.peek_unsent(100)]


class TestStore:
    def test_patient_reading_is_queued_as_an_append_only_reading_change(
        self, local_store: LocalStore, reading_service: ReadingService
    ) -> None:
        patient, encounter = uuid.uuid4(), uuid.uuid4()
        reading_service.set_current_patient(patient, encounter)
        outcome = reading_service.store(_payload("2A35", vp.blood_pressure(121, 80, 94, 72, vp.WHEN)))
        assert outcome.status == "stored"
        [(kind, record_id, fields)] = _outbox(local_store)
        assert kind == "reading"
        synced = reading_from_change_fields(record_id, fields)
        assert (synced.patient_id, synced.encounter_id, synced.device_id) == (patient, encounter, CUFF)
        assert {v.metric: str(v.value) for v in synced.values}["bp_systolic"] == "121"
        assert synced.device_time == "2026-11-25T10:30:00"
        [row] = reading_service.list_for_patient(patient)
        assert row.id == record_id and row.encounter_id == encounter

    def test_same_measurement_twice_is_one_row_and_one_change(
        self, local_store: LocalStore, reading_service: ReadingService
    ) -> None:
        reading_service.set_current_patient(uuid.uuid4())
        data = vp.blood_pressure(121, 80, 94, 72, vp.WHEN)
        first = reading_service.store(_payload("2A35", data))
        again = reading_service.store(_payload("2A35", data, T0 + timedelta(seconds=3)))
        assert (first.status, again.status) == ("stored", "duplicate")
        assert len(_outbox(local_store)) == 1
        assert len(reading_service.list_for_device(CUFF)) == 1

    def test_values_without_device_time_or_sequence_are_all_kept(self, reading_service: ReadingService) -> None:
        patient = uuid.uuid4()
        reading_service.set_current_patient(patient)
        for second in range(3):  # the same heart rate three times is three beats' worth of readings
            reading_service.store(_payload("2A37", vp.heart_rate(72), T0 + timedelta(seconds=second)))
        assert len(reading_service.list_for_patient(patient)) == 3

    def test_unattached_excluded_and_undecodable_values_are_kept_but_not_queued(
        self, local_store: LocalStore, reading_service: ReadingService
    ) -> None:
        reading_service.store(_payload("2A35", vp.blood_pressure(121, 80, 94, 72, vp.WHEN)))
        reading_service.set_current_patient(uuid.uuid4())
        control = vp.glucose(7, vp.WHEN, 100, control=True)
        reading_service.store(_payload("2A18", control, address="C0:00:00:00:00:06"))
        bad = reading_service.store(_payload("2A35", b"\x1e\x79"))
        assert bad.status == "ignored"
        assert _outbox(local_store) == []
        statuses = sorted(
            (r.status, r.note is not None)
            for address in (CUFF, "C0:00:00:00:00:06")
            for r in reading_service.list_for_device(address)
        )
        assert statuses == [("excluded", True), ("unattached", True), ("undecodable", True)]
        assert reading_service.last_sequence("C0:00:00:00:00:06") == 7  # the meter's counter still moves on

    def test_known_devices_are_remembered_and_forgotten_without_losing_readings(
        self, reading_service: ReadingService
    ) -> None:
        reading_service.remember(CUFF, "BP Cuff", ["1810"], paired=True)
        reading_service.set_battery(CUFF, 40)
        reading_service.store(_payload("2A35", vp.blood_pressure(121, 80, 94, 72, vp.WHEN)))
        [row] = reading_service.list_devices()
        assert (row.device.name, row.device.services, row.device.paired, row.device.battery_percent) == (
            "BP Cuff",
            ["1810"],
            True,
            40,
        )
        assert row.last_reading is not None and "SYS 121" in row.last_reading.summary
        assert reading_service.forget(CUFF)
        assert reading_service.list_devices() == []
        assert len(reading_service.list_for_device(CUFF)) == 1
