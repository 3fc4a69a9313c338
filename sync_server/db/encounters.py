"""Encounters and their addenda: every query is scoped by clinic_id, except the encounter push's reads
(`lock_synced`, `clinics_of`), which find rows of any clinic so that the caller can answer ``not_in_scope``.

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


# -- encounter push (`sync_server.services.encounter_sync`) ----------------------------------------------------

SYNC_COLUMNS = (
    "id, clinic_id, patient_id, doctor_id, encounter_type, start_time, chief_complaint, soap_note, status, "
    "completed_at, version, hlc, field_hlcs"
)
"""The columns an encounter's synced state is read from (`sync_server.services.encounter_sync.state_of`)."""


async def lock_synced(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """The stored rows of these encounters in any clinic (the caller checks scope), locked until commit.

    One query for a whole push batch; rows are locked in id order, so two batches touching the same encounters
    cannot deadlock.
    """
    if not ids:
        return []
    return list(
        await conn.fetch(
            f"SELECT {SYNC_COLUMNS} FROM encounters WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            list(set(ids)),
        )
    )


async def clinics_of(
    conn: asyncpg.Connection, patient_ids: list[uuid.UUID], user_ids: list[uuid.UUID]
) -> tuple[dict[uuid.UUID, uuid.UUID], dict[uuid.UUID, uuid.UUID | None]]:
    """The clinic of each of these patients (deleted ones too) and users that exist, in one statement."""
    rows = await conn.fetch(
        """
        SELECT true AS patient, id, clinic_id FROM patients WHERE id = ANY($1::uuid[])
        UNION ALL
        SELECT false, id, clinic_id FROM users WHERE id = ANY($2::uuid[])
        """,
        patient_ids,
        user_ids,
    )
    return (
        {r["id"]: r["clinic_id"] for r in rows if r["patient"]},
        {r["id"]: r["clinic_id"] for r in rows if not r["patient"]},
    )


_SYNCED_VALUES = (
    "id, patient_id, doctor_id, encounter_type, start_time, chief_complaint, soap_note, status, completed_at, hlc,"
    " field_hlcs, version, base_version"
)
_SYNCED_ARRAYS = (
    "$2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[], $7::text[], $8::jsonb[], $9::text[],"
    " $10::timestamptz[], $11::text[], $12::jsonb[], $13::int[], $14::int[]"
)
_COPY_SYNCED = ("id", "clinic_id", *(c.strip() for c in _SYNCED_VALUES.split(",")[1:-1]))
"""`write_synced`'s columns of a new row (version given: a new encounter written twice in a batch is at 2)."""
_UPDATE_SYNCED = f"""
    UPDATE encounters e SET encounter_type = v.encounter_type, start_time = v.start_time,
           chief_complaint = v.chief_complaint, soap_note = v.soap_note, status = v.status,
           completed_at = v.completed_at, hlc = v.hlc, field_hlcs = v.field_hlcs, version = v.version,
           updated_at = now()
    FROM unnest({_SYNCED_ARRAYS}) AS v({_SYNCED_VALUES})
    WHERE e.id = v.id AND e.clinic_id = $1 AND e.version = v.base_version
"""


async def write_synced(conn: asyncpg.Connection, clinic_id: uuid.UUID, writes: list[tuple[Any, ...]]) -> None:
    """Store merged encounter states, each encounter at most once: one COPY for the new, one UPDATE for the rest.

    New rows go in with COPY, as new patients do (`sync_server.db.sync.write_patients`): ≈ 10 % less time per
    batch of 1000 new encounters than ``INSERT … SELECT FROM unnest`` (bench/push_micro.py --kind encounter).

    Args:
        clinic_id: the pushing device's clinic; updated rows must already belong to it.
        writes: (id, patient id, doctor id, encounter type, start time, chief complaint, SOAP note JSON text or
            None, status, completed at, hlc, field stamps JSON text, version, version stored now or None for a
            new encounter). ``version`` is the version the row ends with: the stored one plus the number of
            writes the batch made of it, one at a time.

    Raises:
        RuntimeError: an encounter to update is not stored in this clinic at the version given (its row is
            locked by the caller, so this is a bug, never a race).
    """
    new = [w for w in writes if w[-1] is None]
    old = [w for w in writes if w[-1] is not None]
    if new:
        await conn.copy_records_to_table(
            "encounters", records=[(w[0], clinic_id, *w[1:12]) for w in new], columns=_COPY_SYNCED
        )
    if old:
        status = await conn.execute(_UPDATE_SYNCED, clinic_id, *zip(*old, strict=True))
        if int(status.split()[-1]) != len(old):
            raise RuntimeError("an encounter to update is not stored in this clinic at the version it was read with")


async def add_late_addenda(conn: asyncpg.Connection, clinic_id: uuid.UUID, rows: list[tuple[Any, ...]]) -> None:
    """Addenda the server made of late edits: (id, encounter id, author id, text, SOAP note JSON text or None,
    hlc) each, in one statement; one already stored (the same late edit sent again) is left as it is."""
    if rows:
        await conn.execute(
            """
            INSERT INTO encounter_addenda (id, encounter_id, clinic_id, author_id, text, soap_note, hlc)
            SELECT a.id, a.encounter_id, $1, a.author_id, a.text, a.soap_note, a.hlc
            FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::jsonb[], $7::text[])
                 AS a(id, encounter_id, author_id, text, soap_note, hlc)
            ON CONFLICT (id) DO NOTHING
            """,
            clinic_id,
            *zip(*rows, strict=True),
        )
