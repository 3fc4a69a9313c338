"""Devices, push idempotency, the per-clinic change feed and record history."""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from sync_server.db.feed_listener import FEED_CHANNEL


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
    response: bytes,
) -> None:
    """Keep a push's answer (its JSON, UTF-8) under the batch id, for a retried batch.

    Stored zlib-compressed (level 1) in a ``bytea`` kept out of line uncompressed by PostgreSQL (migration
    2026_11_26_0013): the answer of a 1000-change batch is ≈ 130 kB of JSON, which ``jsonb`` parsing and
    PostgreSQL's own compression cost ≈ 2 ms a batch, against ≈ 0.3 ms for zlib here. Read back with
    `batch_answer`.
    """
    await conn.execute(
        "INSERT INTO sync_batches (batch_id, device_id, clinic_id, response) VALUES ($1, $2, $3, $4)",
        batch_id,
        device_id,
        clinic_id,
        zlib.compress(response, 1),
    )


def batch_answer(stored: asyncpg.Record) -> bytes:
    """The JSON of a stored answer (`lock_batch`'s row): zlib data, or plain JSON text for answers stored
    before migration 2026_11_26_0013 (a JSON object starts with ``{``, zlib data never does)."""
    data = bytes(stored["response"])
    return data if data[:1] == b"{" else zlib.decompress(data)


# The clinic's counter moved on by $2 places (its row lock held until commit) and the NOTIFY riding on the
# same statement (no extra round trip; PostgreSQL delivers it at commit, once per transaction and payload, and
# never for a rollback: it wakes the clinic's waiting pulls, db.feed_listener). Entry i (from 1) of the list
# $4 gets the position c.last_seq - $2 + i: the positions are worked out in SQL from the list's order, no
# per-entry values built or sent from Python.
_COUNTER = """
    c AS (
        INSERT INTO feed_counters (clinic_id, last_seq) VALUES ($1, $2)
        ON CONFLICT (clinic_id) DO UPDATE SET last_seq = feed_counters.last_seq + EXCLUDED.last_seq
        RETURNING last_seq
    ), n AS (SELECT pg_notify($3, $1::text))
"""


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
    # ONE statement: counter, NOTIFY and entries. A record listed twice keeps its last position, as one upsert
    # per entry in list order would leave it (one statement cannot upsert a row twice).
    await _write_feed(conn, _BUMP_SQL, clinic_id, kind, record_ids, batch_id)


_BUMP_SQL = f"""
    WITH {_COUNTER.strip()}, u AS (
        SELECT DISTINCT ON (e.record_id) e.record_id, e.pos
        FROM unnest($4::uuid[]) WITH ORDINALITY AS e(record_id, pos)
        ORDER BY e.record_id, e.pos DESC
    )
    INSERT INTO change_feed (clinic_id, seq, kind, record_id, batch_id)
    SELECT $1, c.last_seq - $2 + u.pos, $5, u.record_id, $6 FROM c, n, u
    ON CONFLICT (kind, record_id) DO UPDATE
        SET seq = EXCLUDED.seq, clinic_id = EXCLUDED.clinic_id, batch_id = EXCLUDED.batch_id
"""
_INSERT_SQL = f"""
    WITH {_COUNTER.strip()}
    INSERT INTO change_feed (clinic_id, seq, kind, record_id, batch_id)
    SELECT $1, c.last_seq - $2 + e.pos, $5, e.record_id, $6
    FROM c, n, unnest($4::uuid[]) WITH ORDINALITY AS e(record_id, pos)
"""


async def _write_feed(
    conn: asyncpg.Connection,
    sql: str,
    clinic_id: uuid.UUID,
    kind: str,
    record_ids: Sequence[uuid.UUID],
    batch_id: uuid.UUID | None,
) -> None:
    """Run one of the feed statements (`_BUMP_SQL`, `_INSERT_SQL`): the same six parameters."""
    await conn.execute(sql, clinic_id, len(record_ids), FEED_CHANNEL, list(record_ids), kind, batch_id)


async def add_to_feed(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    kind: str,
    record_ids: Sequence[uuid.UUID],
    batch_id: uuid.UUID | None,
) -> None:
    """`bump_feed` for records the caller found without a feed entry (under its own locks), each listed once.

    `insert_feed` in a savepoint: no speculative insertion and no de-duplicating sort per entry (measured
    with 1000 entries a statement: 6.4 µs an entry against `bump_feed`'s 7.9, medians; bench/feed_write.py,
    BENCHMARKS.md P5). Should one of them have an entry after all (a concurrent transaction
    wrote it meanwhile), or be listed twice, the savepoint is rolled back (counter included) and `bump_feed`
    does it: same positions, same counter lock held until commit.
    """
    if not record_ids:
        return
    try:
        async with conn.transaction():
            await insert_feed(conn, clinic_id, kind, record_ids, batch_id)
    except asyncpg.UniqueViolationError:
        await bump_feed(conn, clinic_id, kind, record_ids, batch_id)


async def insert_feed(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    kind: str,
    record_ids: Sequence[uuid.UUID],
    batch_id: uuid.UUID | None,
) -> None:
    """Give records that have no feed entry the next positions, in ONE plain INSERT (counter, NOTIFY, entries).

    Raises `asyncpg.UniqueViolationError` if one of them has an entry (or is listed twice): run it in a
    savepoint (`add_to_feed`, `sync_server.db.wearables.copy_new`). Same counter lock as `bump_feed`.
    """
    if not record_ids:
        return
    await _write_feed(conn, _INSERT_SQL, clinic_id, kind, record_ids, batch_id)


async def lock_patients(conn: asyncpg.Connection, ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """The stored rows of these patients in any clinic (the caller checks scope), locked until commit.

    One query for a whole push batch; rows are locked in id order, so two batches touching the same patients
    cannot deadlock.
    """
    if not ids:
        return []
    return list(
        await conn.fetch("SELECT * FROM patients WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", list(set(ids)))
    )


_WRITE_COLUMNS = (
    "id, clinic_id, name, gender, year_of_birth, date_of_birth, mobile, abha_number, abha_address, address, deleted,"
    " hlc, field_hlcs"
)
_COPY_COLUMNS = tuple(c.strip() for c in _WRITE_COLUMNS.split(","))
_WRITE_ARRAYS = (
    "$1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::smallint[], $6::date[], $7::text[], $8::text[],"
    " $9::text[], $10::jsonb[], $11::boolean[], $12::text[], $13::jsonb[]"
)


async def write_patients(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    writes: Sequence[tuple[uuid.UUID, dict[str, Any], dict[str, str], bool]],
) -> dict[uuid.UUID, int]:
    """Store merged patient states, each patient at most once: one COPY for the new, one UPDATE for the rest.

    Args:
        clinic_id: the pushing device's clinic; updated rows must already belong to it.
        writes: (patient id, typed values with ``deleted``, field stamps, whether the patient is stored already).

    Returns:
        The new version of each patient: 1 for a new one, the stored version + 1 for the others (what
        `sync_server.db.patients.write_synced` gives, one patient at a time).
    """
    versions: dict[uuid.UUID, int] = {}
    for exists in (False, True):
        records = [
            (
                pid,
                clinic_id,
                values["name"],
                str(values["gender"]),
                values["year_of_birth"],
                values.get("date_of_birth"),
                values.get("mobile"),
                values.get("abha_number"),
                values.get("abha_address"),
                None if values.get("address") is None else json.dumps(values["address"]),
                bool(values.get("deleted", False)),
                max(stamps.values()),
                json.dumps(stamps),
            )
            for pid, values, stamps, e in writes
            if e is exists
        ]
        if not records:
            continue
        if not exists:
            # New rows start at the column default, version 1; one COPY is the cheapest way in for a batch.
            await conn.copy_records_to_table("patients", records=records, columns=_COPY_COLUMNS)
            versions.update((r[0], 1) for r in records)
            continue
        sql = f"""
            UPDATE patients p SET name = v.name, gender = v.gender, year_of_birth = v.year_of_birth,
                   date_of_birth = v.date_of_birth, mobile = v.mobile, abha_number = v.abha_number,
                   abha_address = v.abha_address, address = v.address, deleted = v.deleted, hlc = v.hlc,
                   field_hlcs = v.field_hlcs, version = p.version + 1, updated_at = now()
            FROM unnest({_WRITE_ARRAYS}) AS v({_WRITE_COLUMNS})
            WHERE p.id = v.id AND p.clinic_id = v.clinic_id
            RETURNING p.id, p.version
        """
        returned = await conn.fetch(sql, *zip(*records, strict=True))
        if len(returned) != len(records):
            raise RuntimeError(f"{len(records) - len(returned)} patient(s) to update are not stored in this clinic")
        versions.update((r["id"], r["version"]) for r in returned)
    return versions


async def detect_duplicates(conn: asyncpg.Connection, clinic_id: uuid.UUID, patient_ids: Sequence[uuid.UUID]) -> int:
    """`sync_server.db.duplicates.detect` for several patients in one statement (same rule, same pairs).

    Record every live patient of the clinic that looks like one of these: same ABHA number, same ABHA address,
    or same mobile + name (case-insensitive) + year of birth. Returns new pairs found.
    """
    status = await conn.execute(
        """
        INSERT INTO patient_duplicates (clinic_id, patient_a, patient_b, reason)
        SELECT p.clinic_id, LEAST(p.id, o.id), GREATEST(p.id, o.id),
               CASE WHEN p.abha_number IS NOT NULL AND p.abha_number = o.abha_number THEN 'abha_number'
                    WHEN p.abha_address IS NOT NULL AND p.abha_address = o.abha_address THEN 'abha_address'
                    ELSE 'mobile_name_year' END
        FROM unnest($1::uuid[]) WITH ORDINALITY AS d(id, ord)
        JOIN patients p ON p.id = d.id
        JOIN patients o ON o.clinic_id = p.clinic_id AND o.id <> p.id AND NOT o.deleted
             AND ((p.abha_number IS NOT NULL AND o.abha_number = p.abha_number)
                  OR (p.abha_address IS NOT NULL AND o.abha_address = p.abha_address)
                  OR (p.mobile IS NOT NULL AND o.mobile = p.mobile AND o.year_of_birth = p.year_of_birth
                      AND lower(o.name) = lower(p.name)))
        WHERE p.clinic_id = $2 AND NOT p.deleted
        ORDER BY d.ord
        ON CONFLICT (patient_a, patient_b) DO NOTHING
        """,
        list(patient_ids),
        clinic_id,
    )
    return int(status.split()[-1])


_FEED_KINDS_OTHER = (
    "('reading', 'encounter', 'encounter_addendum', 'prescription_draft', 'signed_prescription', 'prescription_status')"
)
"""Feed kinds whose rows `services.sync.pull` reads by id after the page (readings, encounters, prescriptions)."""


def _page_sql(gate: str = "") -> str:
    """The feed entries after $2 with each patient's current state joined: only the columns a pulled change
    needs (`patients.state_of`, version, stamps), not the row's bookkeeping (created/updated by and at)."""
    return f"""
    SELECT f.seq, f.kind, f.record_id, f.batch_id, p.id, p.name, p.gender, p.year_of_birth, p.date_of_birth,
           p.mobile, p.abha_number, p.abha_address, p.address, p.deleted, p.version, p.hlc, p.field_hlcs
    FROM change_feed f LEFT JOIN patients p ON p.id = f.record_id AND f.kind = 'patient'
    WHERE {gate}f.clinic_id = $1 AND f.seq > $2
      AND (f.kind IN {_FEED_KINDS_OTHER} OR (f.kind = 'patient' AND p.id IS NOT NULL))
    ORDER BY f.seq
    LIMIT $3
"""


_PAGE = _page_sql()


async def feed_page(conn: asyncpg.Connection, clinic_id: uuid.UUID, after: int, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` feed entries after ``after``: patients joined with their current state, readings
    (their rows come from `sync_server.db.wearables.readings_rows`) and encounters (`services.encounter_sync`)."""
    return list(await conn.fetch(_PAGE, clinic_id, after, limit))


# `_PAGE` behind the device check, in one statement: one row with ``live`` false (device revoked, unknown or of
# another clinic), one row with ``live`` true and no entry (nothing new), or the page's entries. The lateral
# page can only run as the inner side of a nested loop over the one outer row, which keeps its order; the
# outer ORDER BY says so rather than relying on it.
_DEVICE_PAGE = f"""
    SELECT d.live, e.*
    FROM (SELECT EXISTS (SELECT FROM devices WHERE id = $4 AND clinic_id = $1 AND revoked_at IS NULL) AS live) d
    LEFT JOIN LATERAL ({_page_sql("d.live AND ")}) e ON true
    ORDER BY e.seq
"""


async def device_feed_page(
    conn: asyncpg.Connection, device_id: uuid.UUID, clinic_id: uuid.UUID, after: int, limit: int
) -> list[asyncpg.Record] | None:
    """`feed_page` for a device, checked in the same statement: None when the device is not enrolled (or
    revoked, or of another clinic). An idle PC's pull is then one round trip to the database."""
    rows = await conn.fetch(_DEVICE_PAGE, clinic_id, after, limit, device_id)
    if not rows[0]["live"]:
        return None
    return [] if rows[0]["seq"] is None else list(rows)


_HISTORY_COLUMNS = ("clinic_id", "kind", "record_id", "field", "value", "hlc", "replaced_by_hlc", "lost", "source")


async def add_history(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (clinic_id, kind, record_id, field, value_json, hlc, replaced_by_hlc, lost, source), with one COPY
    (ids in list order, as row-by-row inserts would number them)."""
    if rows:
        await conn.copy_records_to_table("record_history", records=rows, columns=_HISTORY_COLUMNS)


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
