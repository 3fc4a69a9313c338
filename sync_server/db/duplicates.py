"""Possible duplicate patients of a clinic, and the bookkeeping of merges."""

from __future__ import annotations

import uuid

import asyncpg


async def detect(conn: asyncpg.Connection, clinic_id: uuid.UUID, patient_id: uuid.UUID) -> int:
    """Record every live patient of the clinic that looks like the same person; returns new pairs found.

    Same ABHA number, same ABHA address, or same mobile + name (case-insensitive) + year of birth.
    """
    status = await conn.execute(
        """
        INSERT INTO patient_duplicates (clinic_id, patient_a, patient_b, reason)
        SELECT p.clinic_id, LEAST(p.id, o.id), GREATEST(p.id, o.id),
               CASE WHEN p.abha_number IS NOT NULL AND p.abha_number = o.abha_number THEN 'abha_number'
                    WHEN p.abha_address IS NOT NULL AND p.abha_address = o.abha_address THEN 'abha_address'
                    ELSE 'mobile_name_year' END
        FROM patients p
        JOIN patients o ON o.clinic_id = p.clinic_id AND o.id <> p.id AND NOT o.deleted
             AND ((p.abha_number IS NOT NULL AND o.abha_number = p.abha_number)
                  OR (p.abha_address IS NOT NULL AND o.abha_address = p.abha_address)
                  OR (p.mobile IS NOT NULL AND o.mobile = p.mobile AND o.year_of_birth = p.year_of_birth
                      AND lower(o.name) = lower(p.name)))
        WHERE p.id = $1 AND p.clinic_id = $2 AND NOT p.deleted
        ON CONFLICT (patient_a, patient_b) DO NOTHING
        """,
        patient_id,
        clinic_id,
    )
    return int(status.split()[-1])


async def open_pairs(conn: asyncpg.Connection, clinic_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT d.patient_a, d.patient_b, d.reason, d.detected_at FROM patient_duplicates d
            JOIN patients a ON a.id = d.patient_a JOIN patients b ON b.id = d.patient_b
            WHERE d.clinic_id = $1 AND d.resolved_at IS NULL AND NOT a.deleted AND NOT b.deleted
            ORDER BY d.detected_at
            LIMIT $2
            """,
            clinic_id,
            limit,
        )
    )


async def resolve(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, a: uuid.UUID, b: uuid.UUID, *, resolution: str, by: uuid.UUID
) -> bool:
    status = await conn.execute(
        """
        UPDATE patient_duplicates SET resolved_at = now(), resolution = $4, resolved_by = $5
        WHERE clinic_id = $1 AND patient_a = LEAST($2::uuid, $3::uuid) AND patient_b = GREATEST($2::uuid, $3::uuid)
          AND resolved_at IS NULL
        """,
        clinic_id,
        a,
        b,
        resolution,
        by,
    )
    return status.endswith("1")


async def mark_merged(conn: asyncpg.Connection, merged: uuid.UUID, into: uuid.UUID) -> None:
    await conn.execute("UPDATE patients SET merged_into = $2 WHERE id = $1", merged, into)
