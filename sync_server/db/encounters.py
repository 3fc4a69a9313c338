"""Encounters and their addenda: every query is scoped by clinic_id.

A completed encounter is also protected in the database (trigger encounters_completed_immutable, migration
2026_11_25_0005), so a bug here cannot change one.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

_COLUMNS = (
    "id, clinic_id, patient_id, doctor_id, encounter_type, start_time, chief_complaint, soap_note, status, "
    "completed_at, version, created_at, updated_at"
)
MUTABLE = ("encounter_type", "start_time", "chief_complaint", "soap_note")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def to_dict(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    if out.get("soap_note") is not None:
        out["soap_note"] = json.loads(out["soap_note"])
    return out


async def insert(
    conn: asyncpg.Connection,
    *,
    encounter_id: uuid.UUID,
    clinic_id: uuid.UUID,
    doctor_id: uuid.UUID,
    fields: dict[str, Any],
    hlc: str,
) -> dict[str, Any] | None:
    """Insert a draft encounter; None when the id is already taken (ids are global)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO encounters (id, clinic_id, patient_id, doctor_id, encounter_type, start_time,
                                chief_complaint, soap_note, hlc)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
        ON CONFLICT (id) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        encounter_id,
        clinic_id,
        fields["patient_id"],
        doctor_id,
        fields["encounter_type"],
        fields["start_time"],
        fields["chief_complaint"],
        _json(fields.get("soap_note")),
        hlc,
    )
    return to_dict(row) if row else None


async def get(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, encounter_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    # FOR UPDATE: a PATCH and a completion of the same encounter serialise, so a change can never land
    # after the completion that made the encounter immutable.
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM encounters WHERE id = $1 AND clinic_id = $2{lock}", encounter_id, clinic_id
    )
    return to_dict(row) if row else None


async def update(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, encounter_id: uuid.UUID, changes: dict[str, Any], hlc: str
) -> dict[str, Any]:
    """Change some fields of a draft encounter (the caller has locked it and checked it is a draft)."""
    cols = [c for c in MUTABLE if c in changes]
    sets = ", ".join(f"{c} = ${i + 4}{'::jsonb' if c == 'soap_note' else ''}" for i, c in enumerate(cols))
    values = [_json(changes[c]) if c == "soap_note" else changes[c] for c in cols]
    row = await conn.fetchrow(
        f"""
        UPDATE encounters SET {sets}, version = version + 1, updated_at = now(), hlc = GREATEST(hlc, $3)
        WHERE id = $1 AND clinic_id = $2 AND status = 'draft'
        RETURNING {_COLUMNS}
        """,
        encounter_id,
        clinic_id,
        hlc,
        *values,
    )
    return to_dict(row)


async def complete(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, encounter_id: uuid.UUID, at: datetime, hlc: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        UPDATE encounters SET status = 'completed', completed_at = $3, version = version + 1,
               updated_at = now(), hlc = GREATEST(hlc, $4)
        WHERE id = $1 AND clinic_id = $2 AND status = 'draft'
        RETURNING {_COLUMNS}
        """,
        encounter_id,
        clinic_id,
        at,
        hlc,
    )
    return to_dict(row)


_ADDENDUM_COLUMNS = "id, encounter_id, author_id, text, soap_note, created_at"


async def insert_addendum(
    conn: asyncpg.Connection,
    *,
    addendum_id: uuid.UUID,
    encounter_id: uuid.UUID,
    clinic_id: uuid.UUID,
    author_id: uuid.UUID,
    text: str,
    soap_note: dict[str, Any] | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        INSERT INTO encounter_addenda (id, encounter_id, clinic_id, author_id, text, soap_note)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        RETURNING {_ADDENDUM_COLUMNS}
        """,
        addendum_id,
        encounter_id,
        clinic_id,
        author_id,
        text,
        _json(soap_note),
    )
    return to_dict(row)


async def addenda(conn: asyncpg.Connection, clinic_id: uuid.UUID, encounter_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT {_ADDENDUM_COLUMNS} FROM encounter_addenda
        WHERE encounter_id = $1 AND clinic_id = $2
        ORDER BY created_at, id
        """,
        encounter_id,
        clinic_id,
    )
    return [to_dict(r) for r in rows]


async def patient_exists(conn: asyncpg.Connection, clinic_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM patients WHERE id = $1 AND clinic_id = $2 AND NOT deleted", patient_id, clinic_id
    )
    return found is not None


async def earlier_notes(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, patient_id: uuid.UUID, encounter_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The SOAP notes of the patient's other completed encounters and of their addenda, newest visit first
    (within a visit the latest addendum first, the encounter's own note last).

    Each row: ``encounter_id``, ``start_time``, ``soap_note`` (parsed; addenda without a note are left out).
    """
    rows = await conn.fetch(
        """
        SELECT e.id AS encounter_id, e.start_time, e.soap_note, e.completed_at AS noted_at, 0 AS addendum
        FROM encounters e
        WHERE e.clinic_id = $1 AND e.patient_id = $2 AND e.status = 'completed' AND e.id <> $3
        UNION ALL
        SELECT e.id, e.start_time, a.soap_note, a.created_at, 1
        FROM encounter_addenda a JOIN encounters e ON e.id = a.encounter_id AND e.clinic_id = a.clinic_id
        WHERE e.clinic_id = $1 AND e.patient_id = $2 AND e.status = 'completed' AND e.id <> $3
          AND a.soap_note IS NOT NULL
        ORDER BY start_time DESC, encounter_id DESC, addendum DESC, noted_at DESC
        """,
        clinic_id,
        patient_id,
        encounter_id,
    )
    return [to_dict(r) for r in rows]
