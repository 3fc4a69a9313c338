"""Reads for the patient health timeline: encounters, prescriptions and wearable daily averages, keyset-paged.

Each query returns rows at or after a position (``>=``: the caller drops what the cursor already covered)
in the timeline's order, at most ``limit`` rows, within [start, end).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

import asyncpg


async def patient_clinic(conn: asyncpg.Connection, patient_id: uuid.UUID) -> uuid.UUID | None:
    value = await conn.fetchval("SELECT clinic_id FROM patients WHERE id = $1", patient_id)
    return value if isinstance(value, uuid.UUID) else None


async def encounters(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    patient_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT id, encounter_type, chief_complaint, status, start_time, soap_note FROM encounters
            WHERE clinic_id = $1 AND patient_id = $2
              AND ($3::timestamptz IS NULL OR start_time >= $3) AND ($4::timestamptz IS NULL OR start_time < $4)
              AND ($5::timestamptz IS NULL OR (start_time, id) >= ($5, $6::uuid))
            ORDER BY start_time, id
            LIMIT $7
            """,
            clinic_id,
            patient_id,
            start,
            end,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
    )


async def prescriptions(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    patient_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT id, encounter_id, status, medications, ayush_medications, created_at FROM prescriptions
            WHERE clinic_id = $1 AND patient_id = $2
              AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)
              AND ($5::timestamptz IS NULL OR (created_at, id) >= ($5, $6::uuid))
            ORDER BY created_at, id
            LIMIT $7
            """,
            clinic_id,
            patient_id,
            start,
            end,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
    )


async def wearable_days(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    patient_id: uuid.UUID,
    first: date | None,
    last: date | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Per clinic-local day in [first, last] (either open), the day's averages of every metric as JSON."""
    return list(
        await conn.fetch(
            """
            SELECT day, json_agg(json_build_object('metric', metric, 'avg', avg, 'min', min, 'max', max,
                                                   'count', count, 'unit', unit) ORDER BY metric)::text AS metrics
            FROM wearable_daily_avg
            WHERE clinic_id = $1 AND patient_id = $2
              AND ($3::date IS NULL OR day >= $3) AND ($4::date IS NULL OR day <= $4)
            GROUP BY day
            ORDER BY day
            LIMIT $5
            """,
            clinic_id,
            patient_id,
            first,
            last,
            limit,
        )
    )
