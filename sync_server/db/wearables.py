"""Wearable readings: COPY ingest into `wearable_data`, daily averages, feed and timeline reads.

Table layout and the choice between TimescaleDB and native partitions: migration 2026_11_25_0007.
One row per metric of a reading; the reading's own fields repeat on each of its rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

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
    "content_hash",
    "hlc",
    "batch_id",
)
"""The columns a staged row carries, in `copy_records_to_table` order (``ingested_at`` is the server's)."""

_COLS = ", ".join(COLUMNS)
NATIVE = "native_partitions"
TIMESCALE = "timescaledb"


@dataclass(frozen=True)
class Layout:
    mode: str  # NATIVE or TIMESCALE
    day_zone: str


async def prepare(conn: asyncpg.Connection, times: Sequence[datetime]) -> Layout:
    """The layout, with the partitions of these times' months made (native path) and the staging table ready."""
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
    the daily averages each one recomputes include the rows the other committed.
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
    content_hash: bytes
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
        SELECT DISTINCT w.reading_id, w.content_hash, w.device_id, w.characteristic, w.key_time, w.key_seq, w.time
        FROM wearable_data w
        WHERE w.reading_id = ANY(ARRAY(
            SELECT f.record_id FROM change_feed f WHERE f.kind = 'reading' AND f.record_id = ANY($1::uuid[])
        ))
        UNION
        SELECT DISTINCT w.reading_id, w.content_hash, w.device_id, w.characteristic, w.key_time, w.key_seq, w.time
        FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::timestamptz[])
             AS k(device_id, characteristic, key_time, key_seq, time)
        JOIN wearable_data w ON w.device_id = k.device_id AND w.characteristic = k.characteristic
             AND w.key_time = k.key_time AND w.key_seq = k.key_seq AND w.time = k.time
        """,
        list(ids),
        *([list(column) for column in zip(*keys, strict=True)] if keys else [[], [], [], [], []]),
    )
    return [
        Stored(
            r["reading_id"],
            bytes(r["content_hash"]),
            (r["device_id"], r["characteristic"], r["key_time"], r["key_seq"], r["time"]),
        )
        for r in rows
    ]


async def insert(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> set[uuid.UUID]:
    """COPY the rows into this session's staging table, then ONE ``INSERT … SELECT … ON CONFLICT DO NOTHING``.

    Returns the ids of the readings whose rows were stored (a reading already there, by id or natural key,
    adds nothing: replaying a batch is a no-op). The staging rows stay until commit, for `refresh_daily`.
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


async def add_daily(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    day_zone: str,
    patients: Sequence[uuid.UUID],
    metrics: Sequence[str],
    times: Sequence[datetime],
    values: Sequence[float],
    units: Sequence[str],
) -> None:
    """Fold rows just stored (and only those: `copy_direct` stored all of them) into the daily averages.

    One statement: the rows are grouped by (patient, metric, clinic-local day); a day already averaged gets
    count + n, min/max widened and the average weighted by the counts, so a late reading for an old day
    fixes that day without reading the day's stored rows again.
    """
    await conn.execute(
        """
        INSERT INTO wearable_daily_avg AS d (clinic_id, patient_id, metric, day, avg, min, max, count, unit)
        SELECT $1, r.patient_id, r.metric, (r.time AT TIME ZONE $2)::date, avg(r.value), min(r.value),
               max(r.value), count(*), min(r.unit)
        FROM unnest($3::uuid[], $4::text[], $5::timestamptz[], $6::float8[], $7::text[])
             AS r(patient_id, metric, time, value, unit)
        GROUP BY r.patient_id, r.metric, (r.time AT TIME ZONE $2)::date
        ON CONFLICT (patient_id, metric, day) DO UPDATE
            SET clinic_id = EXCLUDED.clinic_id,
                avg = (d.avg * d.count + EXCLUDED.avg * EXCLUDED.count) / (d.count + EXCLUDED.count),
                min = least(d.min, EXCLUDED.min), max = greatest(d.max, EXCLUDED.max),
                count = d.count + EXCLUDED.count, unit = least(d.unit, EXCLUDED.unit)
        """,
        clinic_id,
        day_zone,
        patients,
        metrics,
        times,
        values,
        units,
    )


async def refresh_daily(conn: asyncpg.Connection, clinic_id: uuid.UUID, day_zone: str) -> None:
    """Recompute the daily averages of every (patient, metric, clinic-local day) staged in this transaction.

    Whole days are recomputed from `wearable_data`, so a late reading for an old day fixes that day. Native
    path only: under TimescaleDB the continuous aggregate does this.
    """
    await conn.execute(
        """
        INSERT INTO wearable_daily_avg AS d (clinic_id, patient_id, metric, day, avg, min, max, count, unit)
        SELECT $1, w.patient_id, w.metric, t.day, avg(w.value), min(w.value), max(w.value), count(*), min(w.unit)
        FROM (SELECT DISTINCT patient_id, metric, (time AT TIME ZONE $2)::date AS day FROM wearable_staging) AS t
        JOIN wearable_data w ON w.patient_id = t.patient_id AND w.metric = t.metric
             AND w.time >= (t.day::timestamp AT TIME ZONE $2) AND w.time < ((t.day + 1)::timestamp AT TIME ZONE $2)
        GROUP BY w.patient_id, w.metric, t.day
        ON CONFLICT (patient_id, metric, day) DO UPDATE
            SET clinic_id = EXCLUDED.clinic_id, avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max,
                count = EXCLUDED.count, unit = EXCLUDED.unit
        """,
        clinic_id,
        day_zone,
    )


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
