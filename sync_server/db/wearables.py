"""Wearable readings: COPY ingest into `wearable_data`, daily averages, feed and timeline reads.

Table layout and the choice between TimescaleDB and native partitions: migration 2026_11_25_0007.
One row per metric of a reading; the reading's own fields repeat on each of its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

COLUMNS = (
    "time",
    "clinic_id",
    "patient_id",
    "reading_id",
    "value_index",
    "metric",
    "value",
    "value_text",
    "unit",
    "ucum",
    "original_value",
    "original_unit",
    "device_id",
    "device_name",
    "characteristic",
    "sequence",
    "device_time",
    "time_source",
    "key_time",
    "key_seq",
    "encounter_id",
    "raw_hex",
    "received_at",
    "hlc",
    "batch_id",
)
"""The columns a staged row carries, in `copy_records_to_table` order (``ingested_at`` is the server's)."""

_COLS = ", ".join(COLUMNS)
T = TypeVar("T")
NATIVE = "native_partitions"
TIMESCALE = "timescaledb"


@dataclass(frozen=True)
class Layout:
    mode: str  # NATIVE or TIMESCALE
    day_zone: str


async def prepare(conn: asyncpg.Connection, times: Sequence[datetime]) -> Layout:
    """The layout, with the partitions of these times' months made (native path) and the staging table ready.

    Any time in a month will do (the caller sends one per UTC month rather than every reading's).
    """
    row = await conn.fetchrow("SELECT * FROM wearable_prepare($1::timestamptz[])", list(times))
    assert row is not None
    return Layout(mode=row["mode"], day_zone=row["day_zone"])


async def time_series_mode(conn: asyncpg.Connection) -> str | None:
    """``timescaledb`` or ``native_partitions``; None before the wearables migration ran."""
    if not await conn.fetchval("SELECT to_regclass('public.wearable_settings') IS NOT NULL"):
        return None
    value = await conn.fetchval("SELECT value FROM wearable_settings WHERE key = 'time_series'")
    return None if value is None else str(value)


async def lock_patients(conn: asyncpg.Connection, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The clinic of each stored patient among these, after taking a per-patient lock until commit.

    The lock (in id order, so two batches cannot deadlock) serialises ingests of one patient's readings, so
    the dedupe lookup of one sees the rows the other committed.
    """
    rows = await conn.fetch(
        """
        SELECT u.id, p.clinic_id
        FROM (SELECT id, pg_advisory_xact_lock(hashtextextended(id::text, 5717))
              FROM unnest($1::uuid[]) AS id ORDER BY id) AS u
        JOIN patients p ON p.id = u.id
        """,
        sorted(set(patient_ids)),
    )
    return {r["id"]: r["clinic_id"] for r in rows}


@dataclass(frozen=True)
class Stored:
    """A stored reading that an incoming one matches by id or by natural key."""

    reading_id: uuid.UUID
    natural_key: tuple[str, str, str, int, datetime]


async def matching(
    conn: asyncpg.Connection,
    ids: Sequence[uuid.UUID],
    keys: Sequence[tuple[str, str, str, int, datetime]],
) -> list[Stored]:
    """Stored readings with one of these ids (any time) or natural keys (device, characteristic, key time,
    key sequence, at the same ``time``), one entry per reading.

    The ids are first looked up in the clinic feed's unique (kind, record_id) index, one probe each: every
    stored reading has its feed entry, written in the same transaction (`services.readings.push`) and never
    removed. Only ids found there are then probed in every monthly partition (the time of a reading with
    that id may be any), so a batch of new readings does not probe each partition for each id.
    """
    rows = await conn.fetch(
        """
        SELECT DISTINCT w.reading_id, w.device_id, w.characteristic, w.key_time, w.key_seq, w.time
        FROM wearable_data w
        WHERE w.reading_id = ANY(ARRAY(
            SELECT f.record_id FROM change_feed f WHERE f.kind = 'reading' AND f.record_id = ANY($1::uuid[])
        ))
        UNION
        SELECT DISTINCT w.reading_id, w.device_id, w.characteristic, w.key_time, w.key_seq, w.time
        FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::float8[])
             AS k(device_id, characteristic, key_time, key_seq, epoch)
        JOIN wearable_data w ON w.device_id = k.device_id AND w.characteristic = k.characteristic
             AND w.key_time = k.key_time AND w.key_seq = k.key_seq AND w.time = to_timestamp(k.epoch)
        """,
        list(ids),
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [k[4].timestamp() for k in keys],  # as epoch seconds: see `queue_daily`
    )
    return [
        Stored(
            r["reading_id"],
            (r["device_id"], r["characteristic"], r["key_time"], r["key_seq"], r["time"]),
        )
        for r in rows
    ]


async def insert(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> set[uuid.UUID]:
    """COPY the rows into this session's staging table, then ONE ``INSERT … SELECT … ON CONFLICT DO NOTHING``.

    Returns the ids of the readings whose rows were stored (a reading already there, by id or natural key,
    adds nothing: replaying a batch is a no-op). The staging rows are deleted at commit.
    """
    if not rows:
        return set()
    await conn.copy_records_to_table("wearable_staging", records=rows, columns=COLUMNS)
    inserted = await conn.fetch(
        f"""
        WITH ins AS (
            INSERT INTO wearable_data ({_COLS}) SELECT {_COLS} FROM wearable_staging
            ON CONFLICT DO NOTHING
            RETURNING reading_id
        )
        SELECT DISTINCT reading_id FROM ins
        """
    )
    return {r["reading_id"] for r in inserted}


class NotNew(Exception):
    """Raised by `copy_new`'s chunk producer: not a batch for the bulk path; what was written is rolled back."""


async def copy_new(
    conn: asyncpg.Connection,
    chunks: Iterable[tuple[Sequence[tuple[Any, ...]], Sequence[datetime]]],
    feed: Callable[[], Awaitable[None]],
) -> Layout | None:
    """COPY chunks of rows of readings believed new straight into ``wearable_data``, then run ``feed`` (the plain
    INSERT of their feed entries), all in one savepoint; the layout, or None with nothing of it written.

    ``chunks`` yields (rows, any time in each month they fall in); its months' partitions are made first
    (`prepare`). **Pipelined:** each chunk's COPY is put on the wire and the producer is asked for the next
    chunk while PostgreSQL stores it (the connection itself is used by one statement at a time), so checking
    the next chunk in Python overlaps storing this one; the producer's work after its last chunk overlaps the
    last COPY. The producer raises `NotNew` to give up (None).

    No lookup first: the unique constraints say whether one was stored — ``(reading_id, metric, time)`` and
    the natural key in ``wearable_data``, and the feed's ``(kind, record_id)`` for an id stored at any other
    time (every stored reading has its feed entry). A concurrent push of the same measurement waits on the
    unique index and then conflicts. On None the caller decides each reading with the lookup
    (`matching`) and writes with `copy_direct`/`insert`.
    """
    layout: Layout | None = None
    prepared: set[tuple[int, int]] = set()
    try:
        async with conn.transaction():
            pending: asyncio.Future[str] | None = None
            try:
                for rows, times in chunks:  # the producer checks this chunk while the previous one is stored
                    if pending is not None:
                        await pending
                        pending = None
                    months = {(t.year, t.month): t for t in times}
                    new_months = [t for m, t in months.items() if m not in prepared]
                    if layout is None or new_months:
                        layout = await prepare(conn, new_months)
                        prepared.update(months)
                    pending = await _copy_started(conn, rows)
                if pending is not None:
                    await pending
                    pending = None
                if layout is None:
                    raise NotNew
                await feed()
            finally:
                if pending is not None:  # the producer gave up: the COPY on the wire ends before the rollback
                    with contextlib.suppress(asyncpg.PostgresError):
                        await pending
    except (NotNew, asyncpg.UniqueViolationError):
        return None
    return layout


async def _copy_started(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> asyncio.Future[str]:
    """Start a COPY of the rows into ``wearable_data``; returns once they are on the wire (asyncpg sends the
    statement and every row, up to 512 KiB — a chunk is smaller — before its first wait)."""
    return await started(conn.copy_records_to_table("wearable_data", records=rows, columns=COLUMNS))


async def started(statement: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run one of this module's statements until it waits for PostgreSQL's answer (it is then on the wire) and
    return its result to await: PostgreSQL works on it while the caller computes. Until the result is awaited
    the caller must not use the connection (asyncpg runs one operation at a time)."""
    task = asyncio.ensure_future(statement)
    await asyncio.sleep(0)  # one turn of the loop: the task sends, then waits
    return task


async def copy_direct(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> bool:
    """COPY the rows straight into ``wearable_data`` inside a savepoint; False (nothing written) on a conflict.

    The caller has already checked that no reading of these rows is stored (by id or natural key) while
    holding its patients' locks, so a conflict means a concurrent push stored the same measurement meanwhile
    (another patient's reading from the same device): the caller then takes the `insert` path, whose
    ``ON CONFLICT DO NOTHING`` keeps the first one.
    """
    if not rows:
        return True
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("wearable_data", records=rows, columns=COLUMNS)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def queue_daily(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    patient_ids: Sequence[uuid.UUID | str],
    times: Sequence[datetime],
) -> None:
    """Queue the clinic-local days of readings just stored (reading i: ``patient_ids[i]`` at ``times[i]``) for
    `fold_daily` (native path).

    One row for the whole batch: per patient, the first and last time it stored (three parallel arrays);
    the folder recomputes every day from the first's to the last's, all metrics. A batch holds the readings
    a PC took since its last sync, so a patient's range is a day or two (a glucometer's download of stored
    records may span weeks: the days without readings cost one index probe each). Written in the push's
    own transaction: the days become visible to the folder exactly when the readings do. The times travel
    as epoch seconds (a float8 is encoded in C; a timestamptz costs asyncpg Python arithmetic per value); a
    double holds any microsecond time of this era to well under a microsecond, and ``to_timestamp`` rounds
    back to the exact microsecond, so no time moves to another day.
    """
    first: dict[uuid.UUID | str, datetime] = {}
    last: dict[uuid.UUID | str, datetime] = {}
    for patient, at in zip(patient_ids, times, strict=True):
        if patient not in first:
            first[patient] = last[patient] = at
        elif at < first[patient]:
            first[patient] = at
        elif at > last[patient]:
            last[patient] = at
    if not first:
        return
    await conn.execute(
        """
        INSERT INTO wearable_daily_pending (clinic_id, patient_ids, firsts, lasts)
        SELECT $1, $2::uuid[],
               ARRAY(SELECT to_timestamp(e) FROM unnest($3::float8[]) WITH ORDINALITY AS u(e, i) ORDER BY i),
               ARRAY(SELECT to_timestamp(e) FROM unnest($4::float8[]) WITH ORDINALITY AS u(e, i) ORDER BY i)
        """,
        clinic_id,
        list(first),
        [t.timestamp() for t in first.values()],
        [last[p].timestamp() for p in first],
    )


# The (clinic, patient, clinic-local day) keys of queue rows `q`: every day of each patient's range.
_DAYS = """
    SELECT q.id AS queued, q.clinic_id, k.patient_id, d.day::date AS day
    FROM {queue} q
    CROSS JOIN LATERAL unnest(q.patient_ids, q.firsts, q.lasts) AS k(patient_id, first, last)
    CROSS JOIN (SELECT value AS zone FROM wearable_settings WHERE key = 'day_zone') AS z
    CROSS JOIN LATERAL generate_series(
        (k.first AT TIME ZONE z.zone)::date::timestamp, (k.last AT TIME ZONE z.zone)::date::timestamp, interval '1 day'
    ) AS d(day)
"""


FOLD_LOCK = 571_701
"""Advisory lock key (transaction-level) held by whoever recomputes queued days: one refresher at a time, so a
day recomputed from an older snapshot can never overwrite one recomputed from a newer one."""

# Whole days recomputed from `wearable_data` for the `keys` CTE's (clinic_id, patient_id, day), every metric
# of the patient's readings that day: a late reading for an old day fixes that day. LATERAL, so that each key
# is one range scan of the patient index (patient_id, metric, time) in the one partition its day lies in (a
# join let the planner hash the whole table once per fold: measured 0.4 s per 5 batches at 60k rows, growing).
_RECOMPUTE = """
    ins AS (
        INSERT INTO wearable_daily_avg AS d (clinic_id, patient_id, metric, day, avg, min, max, count, unit)
        SELECT k.clinic_id, k.patient_id, a.metric, k.day, a.avg, a.min, a.max, a.count, a.unit
        FROM keys k
        CROSS JOIN (SELECT value AS zone FROM wearable_settings WHERE key = 'day_zone') AS z
        CROSS JOIN LATERAL (
            SELECT w.metric, avg(w.value) AS avg, min(w.value) AS min, max(w.value) AS max, count(*) AS count,
                   min(w.unit) AS unit
            FROM wearable_data w
            WHERE w.patient_id = k.patient_id
              AND w.time >= (k.day::timestamp AT TIME ZONE z.zone)
              AND w.time < ((k.day + 1)::timestamp AT TIME ZONE z.zone)
            GROUP BY w.metric
        ) AS a
        ON CONFLICT (patient_id, metric, day) DO UPDATE
            SET clinic_id = EXCLUDED.clinic_id, avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max,
                count = EXCLUDED.count, unit = EXCLUDED.unit
        RETURNING 1
    )
"""


async def fold_daily(conn: asyncpg.Connection, batches: int) -> int:
    """Recompute the days of up to ``batches`` queued batches (oldest first) and drop them from the queue.

    Run it in a transaction: the queue rows go when the recomputed averages commit, and the fold lock is
    held until then. Returns how many queue rows were folded (0: the queue is empty, or being folded).
    """
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM wearable_daily_pending)"):
        return 0  # the usual idle round: no lock taken
    await conn.execute("SELECT pg_advisory_xact_lock($1)", FOLD_LOCK)
    folded = await conn.fetchval(
        f"""
        WITH taken AS (
            DELETE FROM wearable_daily_pending
            WHERE id IN (SELECT id FROM wearable_daily_pending ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING id, clinic_id, patient_ids, firsts, lasts
        ), keys AS (
            SELECT DISTINCT ON (x.patient_id, x.day) x.clinic_id, x.patient_id, x.day
            FROM ({_DAYS.format(queue="taken")}) AS x
            ORDER BY x.patient_id, x.day, x.queued DESC
        ), {_RECOMPUTE.strip()}
        SELECT count(*) FROM taken  -- ins runs to completion whether read or not
        """,
        batches,
    )
    return int(folded or 0)


async def refresh_patient(conn: asyncpg.Connection, patient_id: uuid.UUID) -> None:
    """Recompute this patient's queued days now (before showing them); the queue rows stay for `fold_daily`.

    Cheap when nothing of the patient is queued (one look at the short queue, no lock). Run it in a
    transaction: the fold lock is held until commit.
    """
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM wearable_daily_pending WHERE $1 = ANY(patient_ids))", patient_id
    ):
        return
    await conn.execute("SELECT pg_advisory_xact_lock($1)", FOLD_LOCK)
    await conn.execute(
        f"""
        WITH keys AS (
            SELECT DISTINCT ON (x.day) x.clinic_id, x.patient_id, x.day
            FROM ({_DAYS.format(queue="(SELECT * FROM wearable_daily_pending WHERE $1 = ANY(patient_ids))")}) AS x
            WHERE x.patient_id = $1
            ORDER BY x.day, x.queued DESC
        ), {_RECOMPUTE.strip()}
        SELECT 1  -- ins runs to completion whether read or not
        """,
        patient_id,
    )


async def pending_daily(conn: asyncpg.Connection) -> int:
    """How many pushed batches have days not folded into the averages yet."""
    return int(await conn.fetchval("SELECT count(*) FROM wearable_daily_pending"))


async def readings_rows(conn: asyncpg.Connection, reading_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Every row of these readings, grouped by reading in value order (to rebuild the records)."""
    if not reading_ids:
        return []
    return list(
        await conn.fetch(
            "SELECT * FROM wearable_data WHERE reading_id = ANY($1::uuid[]) ORDER BY reading_id, value_index",
            list(reading_ids),
        )
    )


async def daily_averages(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    patient_id: uuid.UUID,
    first: date | None,
    last: date | None,
) -> list[asyncpg.Record]:
    """The patient's daily averages in [first, last] (either open), by day then metric."""
    return list(
        await conn.fetch(
            """
            SELECT metric, day, avg, min, max, count, unit FROM wearable_daily_avg
            WHERE clinic_id = $1 AND patient_id = $2
              AND ($3::date IS NULL OR day >= $3) AND ($4::date IS NULL OR day <= $4)
            ORDER BY day, metric
            """,
            clinic_id,
            patient_id,
            first,
            last,
        )
    )
