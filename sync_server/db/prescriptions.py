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
