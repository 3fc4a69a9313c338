"""Encounters and their addenda in the local store (SQL only; the rules are in `desktop.services.encounters`).

Rows come back as the shared record models (`shared.records.encounter.Encounter` / `Addendum`), so a
screen shows what the server would send. A completed encounter is refused by triggers as well as by the
service (revision 2026_11_25_0002); the repository does not check it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from desktop.errors import NotFound
from desktop.store.tables import encounter_addenda, encounters, json_text
from shared.clock import Stamp, encode
from shared.records.encounter import Addendum, Encounter, SoapNote
from shared.sync.encounter_merge import SECTION_FIELDS
from shared.sync.protocol import JsonValue

UNSTAMPED = encode(Stamp(0, 0, "unstamped"))
"""The stamp of fields written before encounters synced: older than any real edit."""


def utc_text(value: datetime | None) -> str | None:
    """A time as it travels in an encounter change (UTC, ``Z``; the server refuses other forms)."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def synced_fields(
    *,
    patient_id: uuid.UUID,
    doctor_id: uuid.UUID,
    encounter_type: str,
    start_time: datetime,
    chief_complaint: str,
    soap_note: dict[str, Any] | None,
    status: str,
    completed_at: datetime | None,
) -> dict[str, JsonValue]:
    """An encounter's columns as synced fields (`shared.sync.encounter_merge`): one field per SOAP section."""
    note = soap_note or {}
    fields: dict[str, JsonValue] = {
        "patient_id": str(patient_id),
        "doctor_id": str(doctor_id),
        "encounter_type": encounter_type,
        "start_time": utc_text(start_time),
        "chief_complaint": chief_complaint,
        "status": status,
        "completed_at": utc_text(completed_at),
    }
    return fields | {name: note[name] for name in SECTION_FIELDS if note.get(name) is not None}


SyncedState = tuple[dict[str, JsonValue], dict[str, str]]
"""An encounter as synced fields and the stamp of each (`EncounterRepository.synced_state`)."""

_IN_CHUNK = 500  # ids per ``IN`` list: far below SQLite's limit on bound parameters


def _synced_state(row: sa.Row[Any]) -> SyncedState:
    fields = synced_fields(
        patient_id=row.patient_id, doctor_id=row.doctor_id, encounter_type=row.encounter_type,
        start_time=row.start_time, chief_complaint=row.chief_complaint, soap_note=row.soap_note,
        status=row.status, completed_at=row.completed_at,
    )  # fmt: skip
    stamps = dict(row.field_hlcs or {})
    # A section cleared by a stamped edit stays a field (null): its stamp must keep beating older edits.
    fields |= {name: None for name in SECTION_FIELDS if name in stamps and name not in fields}
    return fields, {name: stamps.get(name, UNSTAMPED) for name in fields}


def _synced_values(fields: dict[str, JsonValue], field_hlcs: dict[str, str], now: datetime) -> dict[str, Any]:
    """The columns a merged encounter state sets (all but the ids, the clinic and created_at)."""
    sections = {name: fields[name] for name in SECTION_FIELDS if fields.get(name) is not None}
    completed_at = fields.get("completed_at")
    return {
        "encounter_type": fields["encounter_type"],
        "start_time": datetime.fromisoformat(str(fields["start_time"])),
        "chief_complaint": fields["chief_complaint"],
        "soap_note": sections or None,
        "status": fields.get("status", "draft"),
        "completed_at": None if completed_at is None else datetime.fromisoformat(str(completed_at)),
        "field_hlcs": {k: v for k, v in field_hlcs.items() if v != UNSTAMPED},
        "updated_at": now,
    }


def _new_synced_row(
    encounter_id: uuid.UUID,
    fields: dict[str, JsonValue],
    field_hlcs: dict[str, str],
    *,
    clinic_id: uuid.UUID,
    now: datetime,
) -> dict[str, Any]:
    return _synced_values(fields, field_hlcs, now) | {
        "id": encounter_id,
        "clinic_id": clinic_id,
        "patient_id": uuid.UUID(str(fields["patient_id"])),
        "doctor_id": uuid.UUID(str(fields["doctor_id"])),
        "created_at": now,
    }


_NEW_COLUMNS = (
    "id", "clinic_id", "patient_id", "doctor_id", "encounter_type", "start_time", "chief_complaint", "soap_note",
    "status", "completed_at", "field_hlcs", "updated_at", "created_at",
)  # fmt: skip
_NEW_SQL = f"INSERT INTO encounters ({', '.join(_NEW_COLUMNS)}) VALUES ({', '.join('?' * len(_NEW_COLUMNS))})"


def _uuid_text(value: object) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _utc_text(value: datetime) -> str:
    """`desktop.store.tables.UtcTimestamp`'s text of an aware datetime."""
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _new_synced_params(
    encounter_id: uuid.UUID,
    fields: dict[str, JsonValue],
    field_hlcs: dict[str, str],
    clinic_text: str,
    now_text: str,
) -> tuple[Any, ...]:
    """The `_NEW_SQL` parameters of `_new_synced_row`, built straight as the columns' types store them (a pulled
    page of 1000 new encounters spent about a third of its apply in SQLAlchemy's per-value conversions).
    tests/desktop/sync/test_apply_encounters_pagewise.py checks both give the same row."""
    sections = {name: fields[name] for name in SECTION_FIELDS if fields.get(name) is not None}
    completed_at = fields.get("completed_at")
    return (
        _uuid_text(encounter_id),
        clinic_text,
        _uuid_text(fields["patient_id"]),
        _uuid_text(fields["doctor_id"]),
        fields["encounter_type"],
        _utc_text(datetime.fromisoformat(str(fields["start_time"]))),
        fields["chief_complaint"],
        json_text(sections) if sections else None,
        fields.get("status", "draft"),
        None if completed_at is None else _utc_text(datetime.fromisoformat(str(completed_at))),
        json_text({k: v for k, v in field_hlcs.items() if v != UNSTAMPED}),
        now_text,
        now_text,
    )


def _addendum(row: sa.Row[Any]) -> Addendum:
    return Addendum(
        id=row.id,
        encounter_id=row.encounter_id,
        author_id=row.author_id,
        text=row.text,
        soap_note=SoapNote.model_validate(row.soap_note) if row.soap_note is not None else None,
        created_at=row.created_at,
    )


def _encounter(row: sa.Row[Any], addenda: list[Addendum]) -> Encounter:
    return Encounter(
        id=row.id,
        clinic_id=row.clinic_id,
        patient_id=row.patient_id,
        doctor_id=row.doctor_id,
        encounter_type=row.encounter_type,
        start_time=row.start_time,
        chief_complaint=row.chief_complaint,
        soap_note=SoapNote.model_validate(row.soap_note) if row.soap_note is not None else None,
        status=row.status,
        completed_at=row.completed_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        addenda=addenda,
    )


class EncounterRepository:
    """Encounter rows on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def insert(self, values: dict[str, Any]) -> None:
        """Insert a new encounter row (every column but the defaults)."""
        self._conn.execute(encounters.insert().values(**values))

    def update(self, encounter_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Change columns of an encounter and bump its version."""
        self._conn.execute(
            encounters.update()
            .where(encounters.c.id == encounter_id)
            .values(**values, version=encounters.c.version + 1)
        )

    def find(self, encounter_id: uuid.UUID) -> Encounter | None:
        """The encounter with its addenda (oldest first), or None."""
        row = self._conn.execute(sa.select(encounters).where(encounters.c.id == encounter_id)).one_or_none()
        return None if row is None else _encounter(row, self.addenda(encounter_id))

    def get(self, encounter_id: uuid.UUID) -> Encounter:
        """The encounter; `NotFound` when there is none."""
        found = self.find(encounter_id)
        if found is None:
            raise NotFound(f"Encounter {encounter_id} is not on this computer.")
        return found

    def for_patient(self, patient_id: uuid.UUID) -> list[Encounter]:
        """The patient's encounters, newest first (without addenda, for lists)."""
        rows = self._conn.execute(
            sa.select(encounters)
            .where(encounters.c.patient_id == patient_id)
            .order_by(encounters.c.start_time.desc(), encounters.c.id.desc())
        ).all()
        return [_encounter(row, []) for row in rows]

    def add_addendum(
        self, *, addendum_id: uuid.UUID, encounter_id: uuid.UUID, author_id: uuid.UUID, text: str,
        soap_note: dict[str, Any] | None, created_at: datetime,
    ) -> None:  # fmt: skip
        """Append an addendum (the trigger refuses one on an encounter that is not completed)."""
        self._conn.execute(
            encounter_addenda.insert().values(
                id=addendum_id,
                encounter_id=encounter_id,
                author_id=author_id,
                text=text,
                soap_note=soap_note,
                created_at=created_at,
            )
        )

    def synced_state(self, encounter_id: uuid.UUID) -> SyncedState | None:
        """The encounter as synced fields and their stamps (unstamped fields: `UNSTAMPED`), or None."""
        row = self._conn.execute(sa.select(encounters).where(encounters.c.id == encounter_id)).one_or_none()
        return None if row is None else _synced_state(row)

    def synced_states(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, SyncedState]:
        """`synced_state` of the stored ones of these ids, read in one query per 500 ids (a pulled page)."""
        found: dict[uuid.UUID, SyncedState] = {}
        wanted = list(set(ids))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            for row in self._conn.execute(sa.select(encounters).where(encounters.c.id.in_(chunk))):
                found[row.id] = _synced_state(row)
        return found

    def write_synced(
        self,
        encounter_id: uuid.UUID,
        fields: dict[str, JsonValue],
        field_hlcs: dict[str, str],
        *,
        clinic_id: uuid.UUID,
        now: datetime,
        exists: bool,
    ) -> None:
        """Store a merged encounter state (a pulled one, or the service's own edit) with its stamps."""
        if exists:
            self.update(encounter_id, _synced_values(fields, field_hlcs, now))
            return
        self.insert(_new_synced_row(encounter_id, fields, field_hlcs, clinic_id=clinic_id, now=now))

    def insert_synced_many(
        self,
        rows: Iterable[tuple[uuid.UUID, dict[str, JsonValue], dict[str, str]]],
        *,
        clinic_id: uuid.UUID,
        now: datetime,
    ) -> None:
        """Insert new encounters from pulled states with one ``executemany`` (each row as `write_synced` with
        ``exists=False`` stores it)."""
        clinic_text, now_text = str(clinic_id), _utc_text(now)
        params = [_new_synced_params(i, fields, stamps, clinic_text, now_text) for i, fields, stamps in rows]
        if params:
            self._conn.exec_driver_sql(_NEW_SQL, params)

    def stamps(self, encounter_id: uuid.UUID) -> dict[str, str]:
        """The stored stamp of each synced field the PC or a pull has stamped."""
        row = self._conn.execute(sa.select(encounters.c.field_hlcs).where(encounters.c.id == encounter_id)).one()
        return dict(row.field_hlcs or {})

    def addendum_exists(self, addendum_id: uuid.UUID) -> bool:
        """Whether this addendum is stored already (addenda made from late sync edits have derived ids)."""
        found = self._conn.execute(sa.select(encounter_addenda.c.id).where(encounter_addenda.c.id == addendum_id))
        return found.first() is not None

    def addenda(self, encounter_id: uuid.UUID) -> list[Addendum]:
        """The encounter's addenda, oldest first."""
        rows = self._conn.execute(
            sa.select(encounter_addenda)
            .where(encounter_addenda.c.encounter_id == encounter_id)
            .order_by(encounter_addenda.c.created_at, encounter_addenda.c.id)
        ).all()
        return [_addendum(row) for row in rows]
