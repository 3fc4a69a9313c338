"""Prescription drafts: every query is scoped by clinic_id."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

_COLUMNS = (
    "id, clinic_id, encounter_id, patient_id, prescriber_id, status, medications, ayush_medications, "
    "advisories, policy_version, interaction_check, overrides, created_at, updated_at"
)
_JSON = ("medications", "ayush_medications", "advisories", "interaction_check", "overrides")


def to_dict(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out


async def insert_draft(
    conn: asyncpg.Connection,
    *,
    prescription_id: uuid.UUID,
    clinic_id: uuid.UUID,
    encounter_id: uuid.UUID,
    patient_id: uuid.UUID,
    prescriber_id: uuid.UUID,
    medications: list[dict[str, Any]],
    ayush_medications: list[dict[str, Any]],
    advisories: list[dict[str, Any]],
    policy_version: str,
    interaction_check: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Insert a draft; None when the id is already taken (ids are global)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO prescriptions (id, clinic_id, encounter_id, patient_id, prescriber_id, status,
                                   medications, ayush_medications, advisories, policy_version,
                                   interaction_check, overrides)
        VALUES ($1, $2, $3, $4, $5, 'draft', $6::jsonb, $7::jsonb, $8::jsonb, $9, $10::jsonb, $11::jsonb)
        ON CONFLICT (id) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        prescription_id,
        clinic_id,
        encounter_id,
        patient_id,
        prescriber_id,
        json.dumps(medications),
        json.dumps(ayush_medications),
        json.dumps(advisories),
        policy_version,
        json.dumps(interaction_check) if interaction_check is not None else None,
        json.dumps(overrides or []),
    )
    return to_dict(row) if row else None


async def get(conn: asyncpg.Connection, clinic_id: uuid.UUID, prescription_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM prescriptions WHERE id = $1 AND clinic_id = $2", prescription_id, clinic_id
    )
    return to_dict(row) if row else None


async def prescriber(conn: asyncpg.Connection, clinic_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The registration facts the prescribing policy reads, as stored from the HPR registry."""
    return await conn.fetchrow(
        "SELECT system_of_medicine, qualification, state FROM users WHERE id = $1 AND clinic_id = $2 AND active",
        user_id,
        clinic_id,
    )


# --- sync (prescription_draft and signed_prescription records; services.rx_sync) ------------------------

SYNC_COLUMNS = (
    "id, clinic_id, encounter_id, patient_id, prescriber_id, status, medications, ayush_medications, advisories, "
    "policy_version, interaction_check, overrides, lines, kb_version, deleted, hlc, field_hlcs, version, "
    "created_at, updated_at, signed_at, content_hash, cose, qr_payload"
)


async def lock_for_sync(conn: asyncpg.Connection, prescription_id: uuid.UUID) -> asyncpg.Record | None:
    """The prescription row, locked until commit (any clinic: the caller checks the scope)."""
    return await conn.fetchrow(f"SELECT {SYNC_COLUMNS} FROM prescriptions WHERE id = $1 FOR UPDATE", prescription_id)


async def sync_rows(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """The rows of these prescriptions (for a pull page)."""
    return list(await conn.fetch(f"SELECT {SYNC_COLUMNS} FROM prescriptions WHERE id = ANY($1::uuid[])", ids))


async def write_synced_draft(
    conn: asyncpg.Connection,
    *,
    exists: bool,
    prescription_id: uuid.UUID,
    clinic_id: uuid.UUID,
    values: dict[str, Any],
) -> int:
    """Store a merged draft (insert or update a draft row); its new version.

    ``values``: encounter_id, patient_id, prescriber_id, medications, ayush_medications, advisories,
    policy_version, interaction_check, overrides, lines, kb_version, deleted, hlc, field_hlcs.
    """
    args = (
        values["prescriber_id"],
        json.dumps(values["medications"]),
        json.dumps(values["ayush_medications"]),
        json.dumps(values["advisories"]),
        values["policy_version"],
        None if values["interaction_check"] is None else json.dumps(values["interaction_check"]),
        json.dumps(values["overrides"]),
        None if values["lines"] is None else json.dumps(values["lines"]),
        values["kb_version"],
        values["deleted"],
        values["hlc"],
        json.dumps(values["field_hlcs"]),
    )
    if exists:
        version: int = await conn.fetchval(
            """
            UPDATE prescriptions SET prescriber_id = $2, medications = $3::jsonb, ayush_medications = $4::jsonb,
                advisories = $5::jsonb, policy_version = $6, interaction_check = $7::jsonb, overrides = $8::jsonb,
                lines = $9::jsonb, kb_version = $10, deleted = $11, hlc = $12, field_hlcs = $13::jsonb,
                version = version + 1, updated_at = now()
            WHERE id = $1 AND status = 'draft'
            RETURNING version
            """,
            prescription_id,
            *args,
        )
        return version
    await conn.execute(
        """
        INSERT INTO prescriptions (id, clinic_id, encounter_id, patient_id, prescriber_id, status, medications,
                                   ayush_medications, advisories, policy_version, interaction_check, overrides,
                                   lines, kb_version, deleted, hlc, field_hlcs)
        VALUES ($1, $2, $3, $4, $5, 'draft', $6::jsonb, $7::jsonb, $8::jsonb, $9, $10::jsonb, $11::jsonb,
                $12::jsonb, $13, $14, $15, $16::jsonb)
        """,
        prescription_id,
        clinic_id,
        values["encounter_id"],
        values["patient_id"],
        *args,
    )
    return 1


async def stamp_api_draft(conn: asyncpg.Connection, prescription_id: uuid.UUID, hlc: str, fields: list[str]) -> None:
    """Stamp a draft the REST API wrote, so it merges with synced edits like any other (every field ``hlc``)."""
    await conn.execute(
        "UPDATE prescriptions SET hlc = $2, field_hlcs = $3::jsonb WHERE id = $1 AND status = 'draft'",
        prescription_id,
        hlc,
        json.dumps(dict.fromkeys(fields, hlc)),
    )
