"""Sync state: this PC's device id, clinic, pull cursor, last push/pull times and last error (key/value).

**Unenrolled PCs.** A clinic PC may be used before anyone enrols it (first day, network down). Records made
then carry `UNENROLLED_CLINIC_ID`, the nil UUID, which no real clinic can have (real ids are UUIDv7). The
enrolment step (desktop/sync) stores the clinic id with `SyncStateRepository.set_clinic_id` and re-homes those
records with `desktop.store.patients.PatientRepository.adopt_clinic`, in the same unit of work. The clinic is
not part of what a change pushes: the server files a pushed change under the pushing device's clinic.

**Device id and clock.** The device id is made on this PC the first time the store opens (UUIDv7) and is
the node id of this PC's hybrid logical clock. After a restart the clock must not issue a stamp at or below
one it issued or received before, so `clock_floor` finds the greatest stamp stored anywhere; the sync client
records the greatest stamp it *received* with `remember_stamp`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from desktop.store.tables import outbox, patient_history, patients
from shared.clock import Stamp, decode, encode
from shared.ids import uuid7

UNENROLLED_CLINIC_ID = uuid.UUID(int=0)
"""Clinic id of records made before this PC was enrolled (the nil UUID; see the module docstring)."""


class Key(StrEnum):
    """The keys of the ``sync_state`` table."""

    DEVICE_ID = "device_id"
    CLINIC_ID = "clinic_id"
    PULL_CURSOR = "pull_cursor"
    LAST_PUSH_AT = "last_push_at"
    LAST_PULL_AT = "last_pull_at"
    LAST_ERROR = "last_error"
    LAST_RECEIVED_HLC = "last_received_hlc"


class SyncStateRepository:
    """Typed access to the ``sync_state`` key/value table on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    # -- raw ------------------------------------------------------------------------------------------

    # Plain SQL through the driver: these run several times in every sync round (an idle one included), where
    # building the same statements with SQLAlchemy Core cost 4-8x as much as running them (BENCHMARKS.md, P2).

    def get(self, key: Key | str) -> str | None:
        """The stored text for ``key``, or ``None``."""
        value = self._conn.exec_driver_sql("SELECT value FROM sync_state WHERE key = ?", (str(key),)).scalar()
        return None if value is None else str(value)

    def set(self, key: Key | str, value: str | None) -> None:
        """Store text for ``key``; ``None`` removes the key."""
        if value is None:
            self._conn.exec_driver_sql("DELETE FROM sync_state WHERE key = ?", (str(key),))
            return
        self._conn.exec_driver_sql(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(key), value),
        )

    # -- typed ----------------------------------------------------------------------------------------

    def device_id(self) -> uuid.UUID | None:
        """This PC's device id, once made."""
        text = self.get(Key.DEVICE_ID)
        return None if text is None else uuid.UUID(text)

    def ensure_device_id(self) -> uuid.UUID:
        """This PC's device id, made now (UUIDv7) when it has none (write unit of work only)."""
        existing = self.device_id()
        if existing is not None:
            return existing
        made = uuid7()
        self.set(Key.DEVICE_ID, str(made))
        return made

    def clinic_id(self) -> uuid.UUID | None:
        """The clinic this PC is enrolled in, or ``None`` before enrolment."""
        text = self.get(Key.CLINIC_ID)
        return None if text is None else uuid.UUID(text)

    def clinic_id_or_unenrolled(self) -> uuid.UUID:
        """The clinic id to give new records: the enrolled clinic, else `UNENROLLED_CLINIC_ID`."""
        return self.clinic_id() or UNENROLLED_CLINIC_ID

    def set_clinic_id(self, clinic_id: uuid.UUID) -> None:
        """Record the clinic this PC was enrolled in (enrolment also calls ``patients.adopt_clinic``)."""
        if clinic_id == UNENROLLED_CLINIC_ID:
            raise ValueError("the unenrolled sentinel is not a clinic id")
        self.set(Key.CLINIC_ID, str(clinic_id))

    def pull_cursor(self) -> str | None:
        """The server's cursor after the last applied pull page."""
        return self.get(Key.PULL_CURSOR)

    def set_pull_cursor(self, cursor: str) -> None:
        """Store the cursor, in the same unit of work that applied its page."""
        self.set(Key.PULL_CURSOR, cursor)

    def _time(self, key: Key) -> datetime | None:
        text = self.get(key)
        return None if text is None else datetime.fromisoformat(text)

    def _set_time(self, key: Key, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("sync times must be timezone-aware")
        self.set(key, when.isoformat())

    def last_push_at(self) -> datetime | None:
        """When the last push succeeded."""
        return self._time(Key.LAST_PUSH_AT)

    def set_last_push_at(self, when: datetime) -> None:
        """Record a successful push."""
        self._set_time(Key.LAST_PUSH_AT, when)

    def last_pull_at(self) -> datetime | None:
        """When the last pull reached the end of the feed."""
        return self._time(Key.LAST_PULL_AT)

    def set_last_pull_at(self, when: datetime) -> None:
        """Record a completed pull."""
        self._set_time(Key.LAST_PULL_AT, when)

    def last_error(self) -> str | None:
        """The last sync error's text, until a sync succeeds."""
        return self.get(Key.LAST_ERROR)

    def set_last_error(self, text: str | None) -> None:
        """Record (or with ``None`` clear) the last sync error."""
        self.set(Key.LAST_ERROR, text)

    def record_pull(self, cursor: str, stamp: Stamp, when: datetime) -> None:
        """`set_pull_cursor`, `remember_stamp` and `set_last_pull_at` of an applied page, in one statement."""
        if when.tzinfo is None:
            raise ValueError("sync times must be timezone-aware")
        # Encoded stamps sort like stamps (ASCII, compared byte by byte): max() keeps the greater one.
        self._conn.exec_driver_sql(
            "INSERT INTO sync_state (key, value) VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT (key) DO UPDATE SET value ="
            " CASE WHEN key = ? THEN max(value, excluded.value) ELSE excluded.value END",
            (
                str(Key.PULL_CURSOR),
                cursor,
                str(Key.LAST_RECEIVED_HLC),
                encode(stamp),
                str(Key.LAST_PULL_AT),
                when.isoformat(),
                str(Key.LAST_RECEIVED_HLC),
            ),
        )

    # -- clock ----------------------------------------------------------------------------------------

    def remember_stamp(self, stamp: Stamp) -> None:
        """Keep the greatest stamp received from the server (``server_hlc``, pulled changes)."""
        current = self.get(Key.LAST_RECEIVED_HLC)
        text = encode(stamp)
        if current is None or text > current:
            self.set(Key.LAST_RECEIVED_HLC, text)

    def clock_floor(self) -> Stamp | None:
        """The greatest stamp stored anywhere: a restarted clock must issue stamps above it."""
        candidates = [
            self._conn.execute(sa.select(sa.func.max(patients.c.hlc))).scalar_one_or_none(),
            self._conn.execute(sa.select(sa.func.max(outbox.c.hlc))).scalar_one_or_none(),
            self._conn.execute(sa.select(sa.func.max(patient_history.c.hlc))).scalar_one_or_none(),
            self.get(Key.LAST_RECEIVED_HLC),
        ]
        # Encoded stamps sort like stamps (shared.clock), so the text maximum is the greatest stamp.
        present = [str(text) for text in candidates if text]
        return decode(max(present)) if present else None
