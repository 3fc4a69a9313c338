"""Devices, push idempotency, the per-clinic change feed and record history."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg


async def insert_device(
    conn: asyncpg.Connection,
    *,
    device_id: uuid.UUID,
    clinic_id: uuid.UUID,
    name: str,
    enrolled_by: uuid.UUID,
    token_hash: bytes,
) -> bool:
    """Enrol a device, or re-enrol one of the same clinic (new token, revocation lifted).

    Re-enrolment keeps the PC's device id, which is also the node id of its clock and the author of its
    queued changes; it needs a fresh HPR sign-in by a doctor or clinic admin, like a first enrolment.
    Returns False when the id belongs to a device of another clinic.
    """
    status = await conn.execute(
        """
        INSERT INTO devices (id, clinic_id, name, enrolled_by, token_hash) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE
            SET token_hash = EXCLUDED.token_hash, name = EXCLUDED.name, enrolled_by = EXCLUDED.enrolled_by,
                revoked_at = NULL, created_at = now()
            WHERE devices.clinic_id = EXCLUDED.clinic_id
        """,
        device_id,
        clinic_id,
        name,
        enrolled_by,
        token_hash,
    )
    return status.endswith("1")


async def device(conn: asyncpg.Connection, device_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM devices WHERE id = $1", device_id)


async def touch_device(conn: asyncpg.Connection, device_id: uuid.UUID) -> None:
    await conn.execute("UPDATE devices SET last_seen_at = now() WHERE id = $1", device_id)


async def revoke_device(conn: asyncpg.Connection, clinic_id: uuid.UUID, device_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "UPDATE devices SET revoked_at = now() WHERE id = $1 AND clinic_id = $2 AND revoked_at IS NULL",
        device_id,
        clinic_id,
    )
    return status.endswith("1")


async def lock_batch(conn: asyncpg.Connection, batch_id: uuid.UUID) -> asyncpg.Record | None:
    """Serialise concurrent retries of one batch, then return its stored answer if it was processed."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 17))", str(batch_id))
    return await conn.fetchrow("SELECT * FROM sync_batches WHERE batch_id = $1", batch_id)


async def store_batch(
    conn: asyncpg.Connection,
    *,
    batch_id: uuid.UUID,
    device_id: uuid.UUID,
    clinic_id: uuid.UUID,
    response: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO sync_batches (batch_id, device_id, clinic_id, response) VALUES ($1, $2, $3, $4::jsonb)",
        batch_id,
        device_id,
        clinic_id,
        json.dumps(response),
    )


async def bump_feed(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    kind: str,
    record_ids: Sequence[uuid.UUID],
    batch_id: uuid.UUID | None,
) -> None:
    """Give each record the next positions in its clinic's feed.

    Call it as late as possible in the transaction. The UPSERT takes the row lock of the clinic's counter and
    holds it until commit, so transactions of one clinic get their seqs in commit order: a reader can never
    see seq n+1 committed while seq n is still in flight, and a pull cursor never skips a late commit
    (DESIGN.md §4; Kinto's ``bump_timestamp`` idea).
    """
    if not record_ids:
        return
    last = await conn.fetchval(
        """
        INSERT INTO feed_counters (clinic_id, last_seq) VALUES ($1, $2)
        ON CONFLICT (clinic_id) DO UPDATE SET last_seq = feed_counters.last_seq + EXCLUDED.last_seq
        RETURNING last_seq
        """,
        clinic_id,
        len(record_ids),
    )
    first = last - len(record_ids) + 1
    await conn.executemany(
        """
        INSERT INTO change_feed (clinic_id, seq, kind, record_id, batch_id) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (kind, record_id) DO UPDATE
            SET seq = EXCLUDED.seq, clinic_id = EXCLUDED.clinic_id, batch_id = EXCLUDED.batch_id
        """,
        [(clinic_id, first + i, kind, rid, batch_id) for i, rid in enumerate(record_ids)],
    )


async def feed_page(conn: asyncpg.Connection, clinic_id: uuid.UUID, after: int, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` feed entries after ``after``, joined with the patient's current state."""
    return list(
        await conn.fetch(
            """
            SELECT f.seq, f.kind, f.record_id, f.batch_id, p.*
            FROM change_feed f JOIN patients p ON p.id = f.record_id
            WHERE f.clinic_id = $1 AND f.seq > $2 AND f.kind = 'patient'
            ORDER BY f.seq
            LIMIT $3
            """,
            clinic_id,
            after,
            limit,
        )
    )


async def add_history(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (clinic_id, kind, record_id, field, value_json, hlc, replaced_by_hlc, lost, source)."""
    if rows:
        await conn.executemany(
            """
            INSERT INTO record_history (clinic_id, kind, record_id, field, value, hlc, replaced_by_hlc, lost, source)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)
            """,
            rows,
        )


async def history(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, kind: str, record_id: uuid.UUID
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM record_history WHERE clinic_id = $1 AND kind = $2 AND record_id = $3 ORDER BY id",
            clinic_id,
            kind,
            record_id,
        )
    )


async def feed_remaining(conn: asyncpg.Connection, clinic_id: uuid.UUID, after: int) -> int:
    """How many feed entries lie after ``after`` (for a first sync's progress bar)."""
    return int(
        await conn.fetchval("SELECT count(*) FROM change_feed WHERE clinic_id = $1 AND seq > $2", clinic_id, after)
    )
