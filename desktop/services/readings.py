"""Readings from Bluetooth health devices: store each value the moment it arrives, attach it, queue it for sync.

`ReadingService` is the `desktop.devices.session.ReadingSink` the BLE reader hands every value to. For each
value it decodes the bytes with `shared.gatt`, then in ONE write transaction on the writer thread inserts the
row (``INSERT … ON CONFLICT(natural_key) DO NOTHING``: a repeated notification or re-downloaded record is
stored once) and, when the value belongs to the patient in the chair, appends it to the outbox as an
append-only ``reading`` change. So a value is committed before the reader does anything else — the device
may switch off right after sending.

Who a value belongs to: the patient currently open in the app (`set_current_patient`, set by the UI) and,
when one is open, the encounter. A value that arrives with no patient open is stored ``unattached`` (kept,
not synced). Glucose control-solution tests and PLX demonstration/test data are stored ``excluded`` (never
patient data; reference §1.7/§1.8). Bytes that do not decode are stored ``undecodable`` with the reason, raw.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from desktop.devices.payload import Payload, StoreOutcome
from desktop.store.readings import KnownDevice, KnownDeviceRepository, ReadingRepository, StoredReading
from desktop.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.clock import HLC, encode
from shared.gatt import GattDecodeError, Reading, decode
from shared.ids import uuid7
from shared.records.reading import (
    ImplausibleReading,
    ReadingNotStored,
    TimeSource,
    check_plausible,
    reading_change_fields,
    readings_from_decoded,
)
from shared.records.reading import Reading as SyncedReading
from shared.sync.protocol import JsonValue, Op, RecordKind

GLUCOSE_MEASUREMENT = "2A18"

_LABELS = {
    "systolic": "SYS",
    "diastolic": "DIA",
    "mean_arterial_pressure": "MAP",
    "pulse_rate": "pulse",
    "heart_rate": "HR",
    "temperature": "temp",
    "glucose": "glucose",
    "spo2": "SpO2",
    "weight": "weight",
    "body_fat": "body fat",
    "cuff_pressure": "cuff",
}


@dataclass(frozen=True)
class DeviceRow:
    """A known device with what the device screen shows about it."""

    device: KnownDevice
    last_reading: StoredReading | None


def _device_time(reading: Reading | None) -> str | None:
    if reading is None or reading.timestamp is None:
        return None
    t = reading.timestamp
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hours:02d}:{t.minutes:02d}:{t.seconds:02d}"


def _number(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _shown(value: Decimal) -> str:
    """For lists: 110.00000 → 110, 36.85 stays (the stored value keeps the device's precision)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _values(reading: Reading) -> list[dict[str, JsonValue]]:
    out: list[dict[str, JsonValue]] = []
    for metric, quantity in reading.values.items():
        item: dict[str, JsonValue] = {"metric": metric, "value": _number(quantity.value), "unit": quantity.unit}
        if quantity.special is not None:
            item["special"] = str(quantity.special)
        out.append(item)
    return out


def summarize(reading: Reading, *, skip_missing: bool = False) -> str:
    """A short line for lists: ``SYS 121 mmHg · DIA 80 mmHg · pulse 100 bpm`` (``skip_missing``: leave out
    values the device marked NaN/NRes, e.g. the diastolic of a live cuff pressure)."""
    parts = []
    for metric, quantity in reading.values.items():
        if skip_missing and quantity.value is None:
            continue
        label = _LABELS.get(metric, metric.replace("_", " "))
        shown = _shown(quantity.value) if quantity.value is not None else str(quantity.special or "—")
        parts.append(f"{label} {shown} {quantity.unit}".strip())
    return " · ".join(parts[:5]) or reading.name.replace("_", " ")


def _pc_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def device_id_of(address: str) -> str:
    """The device identity synced readings carry: its Bluetooth address (upper case), as the server keys it."""
    return address.strip().upper()


def natural_key(device_id: str, characteristic: str, when: str, sequence: int | None) -> str:
    """device | characteristic | device time (or arrival time) | sequence, as `shared.records.reading.natural_key`."""
    return f"{device_id}|{characteristic}|{when}|{'' if sequence is None else sequence}"


def measured_at(reading: Reading | None, received_at: datetime) -> tuple[datetime, TimeSource]:
    """The device's wall clock read in this PC's time zone (the device sends no zone), else arrival time."""
    stamp = None if reading is None else reading.timestamp
    if reading is None or stamp is None or stamp.local is None or reading.details.get("device_clock_not_set") is True:
        return received_at.astimezone(UTC), TimeSource.RECEIVED
    try:
        return stamp.local.astimezone().astimezone(UTC), TimeSource.DEVICE_LOCAL_ASSUMED_PC_ZONE
    except (OverflowError, ValueError):
        return received_at.astimezone(UTC), TimeSource.RECEIVED


class ReadingService:
    """Stores device values, tracks known devices, and knows who is in the chair.

    Args:
        uow: the store's unit-of-work factory (writes run on its writer thread).
        clock: this PC's hybrid logical clock (stamps of queued changes).
        actor: who is signed in (recorded with queued changes).
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: HLC,
        *,
        actor: str | None = None,
        open_encounter: Callable[[], tuple[uuid.UUID, uuid.UUID] | None] | None = None,
    ) -> None:
        self._open_encounter = open_encounter
        self._uow = uow
        self._clock = clock
        self._actor = actor
        self._lock = threading.Lock()
        self._patient_id: uuid.UUID | None = None
        self._encounter_id: uuid.UUID | None = None

    def set_actor(self, actor: str | None) -> None:
        """Who is signed in (recorded with the changes queued from now on)."""
        self._actor = actor

    # -- who is in the chair ---------------------------------------------------------------------------------

    def set_current_patient(self, patient_id: uuid.UUID | None, encounter_id: uuid.UUID | None = None) -> None:
        """The patient (and encounter) new readings attach to; None when no patient is open."""
        with self._lock:
            self._patient_id = patient_id
            self._encounter_id = encounter_id if patient_id is not None else None

    def current_patient(self) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """The patient in the chair, and the encounter open for him (from the encounter screen when it is open)."""
        with self._lock:
            patient_id, encounter_id = self._patient_id, self._encounter_id
        if encounter_id is None and patient_id is not None and self._open_encounter is not None:
            chair = self._open_encounter()
            if chair is not None and chair[0] == patient_id:
                encounter_id = chair[1]
        return patient_id, encounter_id

    # -- the sink --------------------------------------------------------------------------------------------

    def store(self, payload: Payload) -> StoreOutcome:
        """Decode, insert if new, queue for sync; returns once committed (any thread)."""
        patient_id, encounter_id = self.current_patient()
        return self._uow.writer.run(self._store_now, payload, patient_id, encounter_id)

    def _store_now(
        self, payload: Payload, patient_id: uuid.UUID | None, encounter_id: uuid.UUID | None
    ) -> StoreOutcome:
        decoded: Reading | None
        try:
            decoded, problem = decode(payload.characteristic, payload.data), None
        except GattDecodeError as exc:
            decoded, problem = None, exc.message
        with self._uow.write() as uow:
            KnownDeviceRepository(uow.connection).ensure(
                payload.address, name=payload.device_name, services=None, now=datetime.now(UTC)
            )
            row, synced = self._row(payload, decoded, problem, patient_id, encounter_id)
            if not ReadingRepository(uow.connection).insert_if_new(row):
                uow.rollback()
                return StoreOutcome("duplicate", row["summary"], row["sequence"])
            if synced is not None:
                self._enqueue(uow, synced)
            uow.commit()
        status = "stored" if row["status"] in ("patient", "unattached") else "ignored"
        return StoreOutcome(status, row["summary"], row["sequence"])

    def _row(
        self,
        payload: Payload,
        decoded: Reading | None,
        problem: str | None,
        patient_id: uuid.UUID | None,
        encounter_id: uuid.UUID | None,
    ) -> tuple[dict[str, Any], SyncedReading | None]:
        device_id = device_id_of(payload.address)
        received_at = payload.received_at.astimezone(UTC)
        when, source = measured_at(decoded, received_at)
        device_time = _device_time(decoded)
        sequence = decoded.details.get("sequence_number") if decoded is not None else None
        sequence = sequence if isinstance(sequence, int) else None
        reading_id = uuid7()
        synced: SyncedReading | None = None
        values: list[dict[str, JsonValue]] = _values(decoded) if decoded is not None else []
        if decoded is None:
            status, note, summary = "undecodable", problem, f"could not decode: {problem}"
        else:
            summary = summarize(decoded)
            status, note = "unattached", "no patient was open"
            try:
                readings = readings_from_decoded(
                    decoded,
                    patient_id=patient_id or uuid.UUID(int=0),
                    device_id=device_id,
                    received_at=received_at,
                    pc_zone=_pc_zone(),
                    reading_id=reading_id,
                    encounter_id=encounter_id,
                    device_name=payload.device_name,
                )
                check_plausible(readings[0])
            except (ReadingNotStored, ImplausibleReading) as exc:
                status, note = "excluded", str(exc)
                summary = f"{summary} ({exc})"
            else:
                if patient_id is not None:
                    synced = readings[0]
                    status, note = "patient", None
                    values = [v.model_dump(mode="json", exclude_none=True) for v in synced.values]
        if device_time is not None and source is not TimeSource.RECEIVED:
            key_time = device_time
        elif sequence is not None:
            key_time = ""  # glucose context: the record's sequence number identifies it
        else:
            key_time = when.isoformat(timespec="microseconds")
        row = {
            "id": reading_id,
            "natural_key": natural_key(
                device_id,
                payload.characteristic,
                key_time,
                sequence,
            ),
            "device_address": payload.address,
            "device_name": payload.device_name,
            "characteristic": payload.characteristic,
            "sequence": sequence,
            "device_time": device_time,
            "measured_at": when,
            "time_source": str(source),
            "received_at": received_at,
            "patient_id": patient_id if status == "patient" else None,
            "encounter_id": encounter_id if status == "patient" else None,
            "status": status,
            "note": note,
            "values": values,
            "decoded": decoded.model_dump(mode="json") if decoded is not None else None,
            "raw_hex": payload.data.hex(),
            "summary": summary,
        }
        return row, synced

    def _enqueue(self, uow: UnitOfWork, reading: SyncedReading) -> None:
        """Queue the reading as an append-only ``reading`` change (protocol.RecordKind docs)."""
        fields = reading_change_fields(reading)
        stamp = encode(self._clock.now())
        uow.outbox.append(
            kind=RecordKind.READING,
            record_id=reading.id,
            op=Op.UPSERT,
            fields=fields,
            field_hlcs=dict.fromkeys(fields, stamp),
            hlc=stamp,
            now=datetime.now(UTC),
            actor=self._actor,
        )

    def last_sequence(self, address: str) -> int | None:
        """The last glucose record sequence number stored from the device at ``address``."""
        with self._uow.read() as uow:
            return ReadingRepository(uow.connection).last_sequence(address, GLUCOSE_MEASUREMENT)

    # -- known devices ---------------------------------------------------------------------------------------

    def remember(self, address: str, name: str | None, services: list[str], *, paired: bool) -> KnownDevice:
        """Add (or update) a known device, e.g. after pairing."""

        def write() -> KnownDevice:
            with self._uow.write() as uow:
                known = KnownDeviceRepository(uow.connection).ensure(
                    address, name=name, services=services, now=datetime.now(UTC), paired=paired
                )
                uow.commit()
            return known

        return self._uow.writer.run(write)

    def set_battery(self, address: str, percent: int) -> None:
        def write() -> None:
            with self._uow.write() as uow:
                devices = KnownDeviceRepository(uow.connection)
                devices.ensure(address, name=None, services=None, now=datetime.now(UTC))
                devices.set_battery(address, percent, datetime.now(UTC))
                uow.commit()

        self._uow.writer.run(write)

    def forget(self, address: str) -> bool:
        """Drop a device from the known list; its stored readings stay."""

        def write() -> bool:
            with self._uow.write() as uow:
                gone = KnownDeviceRepository(uow.connection).forget(address)
                uow.commit()
            return gone

        return self._uow.writer.run(write)

    def list_devices(self) -> list[DeviceRow]:
        """Known devices with their last reading."""
        with self._uow.read() as uow:
            devices = KnownDeviceRepository(uow.connection).list_all()
            latest = ReadingRepository(uow.connection).latest_by_device()
        return [DeviceRow(device, latest.get(device.address)) for device in devices]

    def list_for_device(self, address: str, limit: int = 50) -> list[StoredReading]:
        with self._uow.read() as uow:
            return ReadingRepository(uow.connection).list_for_device(address, limit)

    def list_for_patient(self, patient_id: uuid.UUID, limit: int = 200) -> list[StoredReading]:
        with self._uow.read() as uow:
            return ReadingRepository(uow.connection).list_for_patient(patient_id, limit)
