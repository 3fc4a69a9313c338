"""Readings and known devices in the local store (append-only readings, natural-key dedupe).

`ReadingRepository.insert_if_new` relies on the UNIQUE ``natural_key`` (``INSERT … ON CONFLICT DO NOTHING``):
a duplicate notification or a re-downloaded record leaves the stored row as it is and reports ``False``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from desktop.store.tables import known_devices, readings


@dataclass(frozen=True)
class KnownDevice:
    """A paired (or at least once read) device."""

    address: str
    name: str | None
    services: list[str]
    paired: bool
    battery_percent: int | None
    added_at: datetime
    last_seen_at: datetime | None


@dataclass(frozen=True)
class StoredReading:
    """One row of ``readings``."""

    id: uuid.UUID
    natural_key: str
    device_address: str
    device_name: str | None
    characteristic: str
    sequence: int | None
    device_time: str | None
    measured_at: datetime
    time_source: str
    received_at: datetime
    patient_id: uuid.UUID | None
    encounter_id: uuid.UUID | None
    status: str
    note: str | None
    values: list[dict[str, Any]]
    decoded: dict[str, Any] | None
    raw_hex: str
    summary: str


def _known(row: sa.Row[Any]) -> KnownDevice:
    m = row._mapping
    return KnownDevice(
        address=m["address"],
        name=m["name"],
        services=list(m["services"] or []),
        paired=bool(m["paired"]),
        battery_percent=m["battery_percent"],
        added_at=m["added_at"],
        last_seen_at=m["last_seen_at"],
    )


def _reading(row: sa.Row[Any]) -> StoredReading:
    m = row._mapping
    return StoredReading(**{name: m[name] for name in StoredReading.__dataclass_fields__})


class KnownDeviceRepository:
    """Known devices on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def find(self, address: str) -> KnownDevice | None:
        row = self._conn.execute(sa.select(known_devices).where(known_devices.c.address == address)).first()
        return None if row is None else _known(row)

    def list_all(self) -> list[KnownDevice]:
        rows = self._conn.execute(sa.select(known_devices).order_by(known_devices.c.name, known_devices.c.address))
        return [_known(row) for row in rows]

    def ensure(
        self, address: str, *, name: str | None, services: list[str] | None, now: datetime, paired: bool | None = None
    ) -> KnownDevice:
        """The device, added if new; name, services and ``paired`` updated when given."""
        current = self.find(address)
        if current is None:
            self._conn.execute(
                known_devices.insert().values(
                    address=address,
                    name=name,
                    services=services or [],
                    paired=bool(paired),
                    added_at=now,
                    last_seen_at=now,
                )
            )
        else:
            changes: dict[str, Any] = {"last_seen_at": now}
            if name:
                changes["name"] = name
            if services:
                changes["services"] = sorted(set(current.services) | set(services))
            if paired is not None:
                changes["paired"] = paired
            self._conn.execute(known_devices.update().where(known_devices.c.address == address).values(**changes))
        found = self.find(address)
        assert found is not None
        return found

    def set_battery(self, address: str, percent: int, now: datetime) -> None:
        self._conn.execute(
            known_devices.update()
            .where(known_devices.c.address == address)
            .values(battery_percent=percent, last_seen_at=now)
        )

    def forget(self, address: str) -> bool:
        """Remove a device from the known list (its stored readings stay)."""
        return bool(self._conn.execute(known_devices.delete().where(known_devices.c.address == address)).rowcount)


class ReadingRepository:
    """Readings on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def insert_if_new(self, row: Mapping[str, Any]) -> bool:
        """Insert a reading unless one with the same natural key exists; True when inserted."""
        statement = sqlite_insert(readings).values(**row).on_conflict_do_nothing(index_elements=["natural_key"])
        return bool(self._conn.execute(statement).rowcount)

    def get_by_natural_key(self, natural_key: str) -> StoredReading | None:
        row = self._conn.execute(sa.select(readings).where(readings.c.natural_key == natural_key)).first()
        return None if row is None else _reading(row)

    def last_sequence(self, address: str, characteristic: str) -> int | None:
        """The greatest stored sequence number of ``characteristic`` from the device (None if none)."""
        value = self._conn.execute(
            sa.select(sa.func.max(readings.c.sequence)).where(
                readings.c.device_address == address, readings.c.characteristic == characteristic
            )
        ).scalar_one_or_none()
        return None if value is None else int(value)

    def list_for_device(self, address: str, limit: int = 50) -> list[StoredReading]:
        rows = self._conn.execute(
            sa.select(readings)
            .where(readings.c.device_address == address)
            .order_by(readings.c.received_at.desc(), readings.c.id.desc())
            .limit(limit)
        )
        return [_reading(row) for row in rows]

    def list_for_patient(self, patient_id: uuid.UUID, limit: int = 200) -> list[StoredReading]:
        rows = self._conn.execute(
            sa.select(readings)
            .where(readings.c.patient_id == patient_id)
            .order_by(readings.c.measured_at.desc(), readings.c.id.desc())
            .limit(limit)
        )
        return [_reading(row) for row in rows]

    def latest_by_device(self) -> dict[str, StoredReading]:
        """The most recently received reading of each device, by address."""
        latest = (
            sa.select(readings.c.device_address, sa.func.max(readings.c.received_at).label("at"))
            .group_by(readings.c.device_address)
            .subquery()
        )
        rows = self._conn.execute(
            sa.select(readings).join(
                latest,
                sa.and_(readings.c.device_address == latest.c.device_address, readings.c.received_at == latest.c.at),
            )
        )
        return {item.device_address: item for item in (_reading(row) for row in rows)}

    def count(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar_one())
