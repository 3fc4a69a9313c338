"""Clinics and their staff (users)."""

from __future__ import annotations

import uuid

import asyncpg


async def get(conn: asyncpg.Connection, clinic_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM clinics WHERE id = $1", clinic_id)


async def find_by_name(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM clinics WHERE name = $1 ORDER BY created_at LIMIT 1", name)


async def insert(
    conn: asyncpg.Connection,
    *,
    clinic_id: uuid.UUID,
    name: str,
    state: str | None,
    hfr_id: str | None = None,
    address: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO clinics (id, name, state, hfr_id, address) VALUES ($1, $2, $3, $4, $5)",
        clinic_id,
        name,
        state,
        hfr_id,
        address,
    )


USER_COLUMNS = (
    "hpr_id",
    "hpr_address",
    "name",
    "mobile",
    "qualification",
    "system_of_medicine",
    "registration_council",
    "registration_number",
    "state",
    "role",
)


async def upsert_user(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, clinic_id: uuid.UUID, fields: dict[str, str | None]
) -> uuid.UUID:
    """Insert a staff member, or refresh the profile of the one with the same (clinic, hpr_id)."""
    cols = [c for c in USER_COLUMNS if c in fields]
    values = [fields[c] for c in cols]
    markers = ", ".join(f"${i + 3}" for i in range(len(cols)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
    row = await conn.fetchval(
        f"""
        INSERT INTO users (id, clinic_id, {", ".join(cols)}) VALUES ($1, $2, {markers})
        ON CONFLICT (clinic_id, hpr_id) DO UPDATE SET {updates}, updated_at = now()
        RETURNING id
        """,
        user_id,
        clinic_id,
        *values,
    )
    return row  # type: ignore[no-any-return]


async def users_by_hpr(conn: asyncpg.Connection, hpr_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT u.*, c.name AS clinic_name FROM users u JOIN clinics c ON c.id = u.clinic_id
            WHERE u.hpr_id = $1 AND u.active ORDER BY u.created_at
            """,
            hpr_id,
        )
    )


async def user_with_clinic(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT u.*, c.name AS clinic_name FROM users u JOIN clinics c ON c.id = u.clinic_id
        WHERE u.id = $1
        """,
        user_id,
    )


async def update_profile(conn: asyncpg.Connection, user_id: uuid.UUID, fields: dict[str, str | None]) -> None:
    cols = [c for c in USER_COLUMNS if c in fields and c != "role"]
    if not cols:
        return
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
    await conn.execute(
        f"UPDATE users SET {sets}, updated_at = now() WHERE id = $1",
        user_id,
        *[fields[c] for c in cols],
    )
