"""Device readings arriving by sync: validate, dedupe and COPY-ingest; rebuild them for the pull feed.

Readings are append-only (`shared.records.reading`, `RecordKind.READING`): never merged or edited. For the
readings of a pushed batch, in order, the answer is:

* ``applied`` (``server_version`` 1): stored now; or already stored with the same content (a replay); or the
  same measurement is stored under another id (natural key: device, characteristic, device time or
  measured_at, sequence) — the first one stays and reaches every PC through the pull.
* ``rejected`` ``signed_immutable``: a delete, or an id already stored (or earlier in the batch) with other
  content — a reading cannot be changed.
* ``rejected`` ``invalid_record``: the fields are not a valid reading (the message names the field), a
  metric outside `shared/knowledge/metrics.yaml`, a value outside its plausibility bounds (the message gives
  value, bounds and source), a measurement time in the future or before 2000, or an unknown patient.
* ``rejected`` ``not_in_scope``: the patient belongs to another clinic. ``clock_skew`` as for patients.

Nothing of a rejected reading is stored. A batch as desktops send it (every reading a new, valid,
plausible upsert of a patient of the caller's clinic, none twice) takes the **bulk path**: checked column by
column (`shared.records.reading_columns`), its rows go straight into ``wearable_data`` by COPY in chunks
(each chunk stored by PostgreSQL while Python checks the next) and its feed entries with one plain INSERT,
in a savepoint and with no lookup first — the unique constraints
(``wearable_data``'s, and the feed's one entry per reading id) catch a reading stored before, and the batch is
then decided reading by reading. That **per-reading path** takes any batch: validation by the compiled fast path
(`shared.records.reading.reading_facts_fast`) for the shape desktops send and the pydantic model for anything
else and for every refusal's message; one lookup of the batch's ids and natural keys (under the patients'
locks; a stored reading with the same id is compared by content hash, rebuilt from its rows); the new
readings' rows with ONE COPY in a savepoint; should a concurrent push have stored one of the same
measurements meanwhile, the savepoint is rolled back and the batch goes through the staging table and ONE
``INSERT … SELECT … ON CONFLICT DO NOTHING`` (`sync_server.db.wearables`). A replayed batch adds nothing
either way. The new readings then enter the clinic's feed.

**Daily averages** (native path) are not updated by the push: it queues each patient's first and last
reading time of the batch, one queue row per batch in the same transaction, and `DailyFolder` (a
background task of the API process) recomputes those whole days from ``wearable_data`` within about
`FOLD_INTERVAL_S`. A late reading for an old day queues that day, so the day is recomputed with it. A
health-graph page first recomputes its patient's queued days (`refresh_patient`), so it never shows an
average that misses a committed reading. Under TimescaleDB the continuous aggregate does all this.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import asyncpg
from pydantic import ValidationError

from shared.clock import HLC, MAX_DRIFT_MS, Stamp, check_incoming, decode, system_wall_ms
from shared.records.reading import (
    ImplausibleReading,
    Metrics,
    Reading,
    ReadingFacts,
    TimeSource,
    check_plausible,
    facts_plausible,
    reading_facts,
    reading_facts_fast,
    reading_from_change_fields,
)
from shared.records.reading_columns import ReadingColumns, reading_columns
from shared.records.validation import violation_from
from shared.sync.protocol import (
    Change,
    ChangeResult,
    ChangeStatus,
    Op,
    PulledChange,
    PushRequest,
    RecordKind,
    RejectCode,
)
from sync_server.db import sync as sync_db
from sync_server.db import wearables as db
from sync_server.services import audit as audit_log
from sync_server.services.change_results import RejectChange as _Reject
from sync_server.services.change_results import rejected as _rejected
from sync_server.services.change_results import same_result_for
from sync_server.services.context import Actor

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""Readings measured before this come from a device whose clock was never set: refused, with that reason."""
FUTURE_LEEWAY = timedelta(days=1)
"""How far past the server's clock a measurement time may lie (PC and device clocks drift)."""
SERVER_VERSION = 1
"""A reading is never changed, so its server version is always 1."""
_METRICS = Metrics.load_default()
_RECEIVED = str(TimeSource.RECEIVED)
_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Incoming:
    index: int
    change: Change
    reading: ReadingFacts
    content_hash: bytes
    key: tuple[str, str, str, int, datetime]  # natural key columns as stored (key_seq -1 for none) + time


def _key_columns(reading: ReadingFacts) -> tuple[str, str, str, int, datetime]:
    # `shared.records.reading.natural_key`, from the facts
    if reading.device_time is not None and reading.time_source is not TimeSource.RECEIVED:
        when = reading.device_time
    else:
        when = reading.measured_at.astimezone(UTC).isoformat(timespec="microseconds")
    sequence = -1 if reading.sequence is None else reading.sequence
    return reading.device_id, reading.characteristic, when, sequence, reading.measured_at


def _content_hash(r: ReadingFacts) -> bytes:
    # Every field in record order: ids as their 128-bit value, texts quoted (None is not "None"), decimals as
    # their text ("120.0" is not "120.00"), times in ISO form. Equal exactly when the readings are equal.
    encounter = None if r.encounter_id is None else r.encounter_id.int
    values = "|".join(
        f"{v.metric!r},{v.value},{v.unit!r},{v.ucum!r},{v.original_value},{v.original_unit!r}" for v in r.values
    )
    text = (
        f"{r.id.int:x}|{r.patient_id.int:x}|{encounter}|{r.device_id!r}|{r.device_name!r}|{r.characteristic!r}|"
        f"{r.measured_at.isoformat()}|{r.device_time!r}|{r.time_source.value!r}|{r.sequence!r}|{r.raw_hex}|"
        f"{r.received_at.isoformat()}|{values}"
    )
    return hashlib.sha256(text.encode()).digest()


def _validate(index: int, change: Change, now: datetime, wall_ms: int) -> _Incoming:
    """The checked reading of one change (``now``/``wall_ms``: the server's clock when the batch arrived).

    The change's stamp is only checked here (not ahead of ``wall_ms`` by more than `MAX_DRIFT_MS`); the
    caller folds the greatest accepted stamp into its clock once for the batch.
    """
    if change.op is not Op.UPSERT:
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, "Readings are append-only: a reading cannot be deleted")
    stamp = decode(change.hlc)
    if stamp.wall_ms - wall_ms > MAX_DRIFT_MS:
        raise _Reject(RejectCode.CLOCK_SKEW, check_incoming(stamp, wall_ms).to_error().message)
    # The compiled rules for the shape desktops send (no model objects built); anything else, and every
    # refusal (for its message), goes through the model. They agree: tests/shared/test_reading_record.py.
    fast = reading_facts_fast(change.id, change.fields, _METRICS)
    try:
        if fast is not None and facts_plausible(fast, _METRICS):
            reading = fast
        else:
            model = reading_from_change_fields(change.id, change.fields)
            check_plausible(model, _METRICS)
            reading = reading_facts(model)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    except ImplausibleReading as exc:
        raise _Reject(RejectCode.INVALID_RECORD, f"Implausible value, not stored: {exc}") from None
    if reading.measured_at > now + FUTURE_LEEWAY:
        raise _Reject(
            RejectCode.INVALID_RECORD,
            f"measured_at {reading.measured_at.isoformat()} is in the future: check the device's and the PC's clock",
        )
    if reading.measured_at < EARLIEST:
        raise _Reject(
            RejectCode.INVALID_RECORD,
            f"measured_at {reading.measured_at.isoformat()} is before 2000: the device's clock was probably never set",
        )
    return _Incoming(index, change, reading, _content_hash(reading), _key_columns(reading))


_TIME, _PATIENT, _READING = (db.COLUMNS.index(c) for c in ("time", "patient_id", "reading_id"))

_APPLIED = ChangeResult(
    kind=RecordKind.READING, id=uuid.UUID(int=0), status=ChangeStatus.APPLIED, server_version=SERVER_VERSION
)


def _applied(change: Change) -> ChangeResult:
    # A copy of a validated answer with only the id replaced (a UUID, as validated in the change): the
    # cheapest way to make one, with no validation to repeat.
    return _APPLIED.model_copy(update={"id": change.id})


def _rows(item: _Incoming, clinic_id: uuid.UUID, batch_id: uuid.UUID) -> list[tuple[Any, ...]]:
    r = item.reading
    device_id, characteristic, key_time, key_seq, time = item.key
    patient_id, reading_id, device_name, sequence, device_time = (
        r.patient_id,
        r.id,
        r.device_name,
        r.sequence,
        r.device_time,
    )
    time_source, encounter_id, raw_hex, received_at = r.time_source.value, r.encounter_id, r.raw_hex, r.received_at
    hlc = item.change.hlc
    return [
        (
            time,
            clinic_id,
            patient_id,
            reading_id,
            position,
            v.metric,
            float(v.value),
            str(v.value),
            v.unit,
            v.ucum,
            None if v.original_value is None else str(v.original_value),
            v.original_unit,
            device_id,
            device_name,
            characteristic,
            sequence,
            device_time,
            time_source,
            key_time,
            key_seq,
            encounter_id,
            raw_hex,
            received_at,
            hlc,
            batch_id,
        )
        for position, v in enumerate(r.values)
    ]


async def push(conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC) -> list[tuple[int, ChangeResult]]:
    """Decide and store the batch's reading changes; (index in the batch, result) for each of them.

    A batch as desktops send it (every reading new, valid, in scope, once) takes the bulk path
    (`_push_new`); any other batch, or one of whose readings turns out to be stored already, is decided
    reading by reading (`_push_each`). Both give the same answers and rows.
    """
    indexes = [i for i, c in enumerate(req.changes) if c.kind is RecordKind.READING]
    if not indexes:
        return []
    fast = await _push_new(conn, actor, req, clock, indexes)
    return fast if fast is not None else await _push_each(conn, actor, req, clock)


BULK_CHUNK = 200
"""Readings a chunk of the bulk path: each chunk's COPY is stored by PostgreSQL while the next is checked."""


async def _push_new(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC, indexes: list[int]
) -> list[tuple[int, ChangeResult]] | None:
    """The bulk path: None (nothing written) unless every reading of the batch is new, valid and in scope.

    Checked column by column (`bulk_rows`), `BULK_CHUNK` readings at a time, each chunk's rows COPYed while the
    next chunk is checked (`db.copy_new`), and the feed entries written with one INSERT, all in a savepoint with
    no lookup first: a reading already stored (by id or natural key) makes a unique constraint fail, the
    savepoint is rolled back, and the caller decides the batch reading by reading — as it does when a chunk
    turns out not to be for the bulk path after earlier chunks went in.
    """
    changes = [req.changes[i] for i in indexes]
    named = _patients_named(changes)
    if named is None:
        return None
    patients = list(named.values())
    batch = _BulkBatch(indexes, changes, actor.clinic_id, req.batch_id, set(named))
    chunks = batch.chunks()
    locking = await db.started(db.lock_patients(conn, patients))
    try:
        first = next(chunks)  # checked while PostgreSQL takes the locks
    except db.NotNew:
        await locking
        return None
    clinics = await locking
    if len(clinics) != len(patients) or set(clinics.values()) != {actor.clinic_id}:
        return None  # an unknown patient or one of another clinic: answered reading by reading
    ids = [c.id for c in changes]

    async def feed() -> None:
        await sync_db.insert_feed(conn, actor.clinic_id, RecordKind.READING, ids, req.batch_id)

    layout = await db.copy_new(conn, chain([first], chunks), feed)
    if layout is None:
        return None
    assert batch.top is not None, "a batch the bulk path stored has its greatest stamp"
    clock.update(batch.top)
    if layout.mode == db.NATIVE:  # their days, for the daily averages' folder (`fold_daily`)
        await db.queue_daily(conn, actor.clinic_id, batch.patient_ids, batch.measured_at)
    await _audit(conn, actor, req.batch_id, dict(batch.results), len(changes))
    return batch.results


def _patients_named(changes: Sequence[Change]) -> dict[str, uuid.UUID] | None:
    """The distinct patients the readings name, as sent and as ids (to lock before anything is written); None
    if one is not a patient id in the shape `reading_columns` accepts (the batch then goes reading by reading)."""
    named = {c.fields.get("patient_id") for c in changes}
    try:
        patients = {p: uuid.UUID(p) for p in named if type(p) is str and len(p) == _UUID_TEXT}
    except ValueError:
        return None
    return patients if len(patients) == len(named) else None


_UUID_TEXT = 36


class _BulkBatch:
    """A batch on the bulk path, produced chunk by chunk for `db.copy_new`; gathers what the push needs after."""

    def __init__(
        self,
        indexes: list[int],
        changes: list[Change],
        clinic_id: uuid.UUID,
        batch_id: uuid.UUID,
        patients: set[str],
    ) -> None:
        self.indexes, self.changes, self.clinic_id, self.batch_id = indexes, changes, clinic_id, batch_id
        self.patients = patients  # as the readings name them (`BulkRows.patient_texts`)
        self.seen = _Seen()
        self.top: Stamp | None = None
        self.patient_ids: list[str] = []
        self.measured_at: list[datetime] = []
        self.results: list[tuple[int, ChangeResult]] = []

    def chunks(self) -> Iterator[tuple[list[tuple[Any, ...]], list[datetime]]]:
        """Each chunk's rows and months, checked by `bulk_rows` (raises `db.NotNew` for a batch that is not for
        the bulk path); the answers are built after the last chunk, while its COPY runs."""
        changes = self.changes
        for start in range(0, len(changes), BULK_CHUNK):
            bulk = bulk_rows(changes[start : start + BULK_CHUNK], self.clinic_id, self.batch_id, self.seen)
            if bulk is None or not self.patients.issuperset(bulk.patient_texts):
                raise db.NotNew
            self.top = bulk.top if self.top is None else max(self.top, bulk.top)
            self.patient_ids += bulk.columns.patient_ids
            self.measured_at += bulk.columns.measured_at
            yield bulk.rows, bulk.months
        self.results = list(zip(self.indexes, same_result_for(_APPLIED, [c.id for c in changes]), strict=True))


@dataclass(slots=True)
class _Seen:
    """The ids and natural keys of a batch's earlier chunks (`bulk_rows`: no reading twice in a batch)."""

    ids: set[uuid.UUID] = field(default_factory=set)
    keys: set[tuple[Any, ...]] = field(default_factory=set)


@dataclass(slots=True)
class BulkRows:
    """A batch of readings checked for the bulk path, as ``wearable_data`` rows (`db.COLUMNS` order)."""

    columns: ReadingColumns
    rows: list[tuple[Any, ...]]
    patient_texts: set[str]  # the distinct patient ids, as sent
    months: list[datetime]  # the first instant of each UTC month with a reading
    top: Stamp  # the greatest stamp of the changes

    @property
    def patients(self) -> list[uuid.UUID]:
        """The distinct patients of the rows."""
        return [uuid.UUID(p) for p in self.patient_texts]


def bulk_rows(
    changes: Sequence[Change], clinic_id: uuid.UUID, batch_id: uuid.UUID, seen: _Seen | None = None
) -> BulkRows | None:
    """The rows of a batch of reading changes if every one is a new reading's upsert that passes every check
    that needs no database (`shared.records.reading_columns`, stamps, times, no reading twice); else None.

    The rows are those `_rows` builds reading by reading (tests/sync_server/test_wearables.py compares them),
    gathered per column in C: a reading's own fields repeat on each of its value rows.
    """
    if not changes or {c.op for c in changes} != {Op.UPSERT}:
        return None
    top = decode(max(c.hlc for c in changes))  # encoded stamps sort as the stamps do
    if top.wall_ms - system_wall_ms() > MAX_DRIFT_MS:
        return None
    cols = reading_columns([c.id for c in changes], [c.fields for c in changes], _METRICS)
    now = datetime.now(UTC)
    if cols is None or max(cols.measured_at) > now + FUTURE_LEEWAY or min(cols.measured_at) < EARLIEST:
        return None
    key_times = [
        when if when is not None and source != _RECEIVED else measured.isoformat(timespec="microseconds")
        for when, source, measured in zip(cols.device_times, cols.time_sources, cols.measured_at, strict=True)
    ]
    key_seqs = [-1 if s is None else s for s in cols.sequences]
    n = len(changes)
    keys = set(zip(cols.device_ids, cols.characteristics, key_times, key_seqs, cols.measured_at, strict=True))
    ids = set(cols.ids)
    if len(ids) != n or len(keys) != n:  # the same reading twice in the batch
        return None
    if seen is not None:  # nor in an earlier chunk of it
        if not seen.ids.isdisjoint(ids) or not seen.keys.isdisjoint(keys):
            return None
        seen.ids |= ids
        seen.keys |= keys
    per_value = itemgetter(*cols.value_reading)

    def spread(column: Sequence[Any]) -> Sequence[Any]:
        picked = per_value(column)
        return picked if len(cols.value_reading) > 1 else (picked,)

    times, patients = spread(cols.measured_at), spread(cols.patient_ids)
    rows = list(
        zip(
            times,
            repeat(str(clinic_id)),  # the same id on every row: encoded from text, in C
            patients,
            spread(cols.ids),
            cols.value_index,
            cols.metrics,
            cols.values,
            cols.value_texts,
            cols.units,
            cols.ucums,
            cols.original_values,
            cols.original_units,
            spread(cols.device_ids),
            spread(cols.device_names),
            spread(cols.characteristics),
            spread(cols.sequences),
            spread(cols.device_times),
            spread(cols.time_sources),
            spread(key_times),
            spread(key_seqs),
            spread(cols.encounter_ids),
            spread(cols.raw_hex),
            spread(cols.received_at),
            spread([c.hlc for c in changes]),
            repeat(str(batch_id)),
        )
    )
    months = sorted({(t.year, t.month) for t in cols.measured_at})
    return BulkRows(
        columns=cols,
        rows=rows,
        patient_texts=set(cols.patient_ids),
        months=[datetime(y, m, 1, tzinfo=UTC) for y, m in months],
        top=top,
    )


async def _push_each(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC
) -> list[tuple[int, ChangeResult]]:
    """Decide and store the batch's readings one by one (lookups first): any batch, any mix of outcomes."""
    results: dict[int, ChangeResult] = {}
    valid: list[_Incoming] = []
    now = datetime.now(UTC)
    wall_ms = system_wall_ms()
    for index, change in enumerate(req.changes):
        if change.kind is not RecordKind.READING:
            continue
        try:
            valid.append(_validate(index, change, now, wall_ms))
        except _Reject as rej:
            results[index] = _rejected(change, rej.code, rej.message)
    if not valid:
        return sorted(results.items())
    # Once for the batch: the greatest stamp (encoded stamps sort as the stamps do: fixed-width lowercase hex).
    clock.update(decode(max(i.change.hlc for i in valid)))
    in_scope = await _in_scope(conn, actor, valid, results)
    months = {(t.year, t.month) for t in (i.reading.measured_at.astimezone(UTC) for i in in_scope)}
    layout = await db.prepare(conn, [datetime(y, m, 1, tzinfo=UTC) for y, m in sorted(months)])
    stored = await db.matching(conn, [i.reading.id for i in in_scope], [i.key for i in in_scope])
    incoming_ids = {i.reading.id for i in in_scope}
    hashes = await _stored_hashes(conn, [s.reading_id for s in stored if s.reading_id in incoming_ids])
    to_insert = _plan(in_scope, stored, hashes, results)
    rows = [row for item in to_insert for row in _rows(item, actor.clinic_id, req.batch_id)]
    if await db.copy_direct(conn, rows):
        # Nothing of these was stored (checked under the patients' locks): every row is in.
        stored_now = to_insert
    else:  # a concurrent push stored some of the same measurements: ON CONFLICT keeps the first
        inserted = await db.insert(conn, rows)
        stored_now = [i for i in to_insert if i.reading.id in inserted]
    new_ids = [i.reading.id for i in stored_now]
    if stored_now and layout.mode == db.NATIVE:  # their days, for the daily averages' folder (`fold_daily`)
        ids = set(new_ids)
        kept = rows if len(stored_now) == len(to_insert) else [r for r in rows if r[_READING] in ids]
        await db.queue_daily(conn, actor.clinic_id, [r[_PATIENT] for r in kept], [r[_TIME] for r in kept])
    await _audit(conn, actor, req.batch_id, results, len(new_ids))
    # New ids only, once each (checked under the patients' locks): the plain-INSERT feed write.
    await sync_db.add_to_feed(conn, actor.clinic_id, RecordKind.READING, new_ids, req.batch_id)
    return sorted(results.items())


async def _in_scope(
    conn: asyncpg.Connection, actor: Actor, valid: list[_Incoming], results: dict[int, ChangeResult]
) -> list[_Incoming]:
    """The readings of patients of the caller's clinic; the others are answered (unknown / other clinic)."""
    clinics = await db.lock_patients(conn, [i.reading.patient_id for i in valid])
    in_scope = []
    for item in valid:
        clinic = clinics.get(item.reading.patient_id)
        if clinic is None:
            message = f"patient_id: no patient {item.reading.patient_id} on the server; push the patient first"
            results[item.index] = _rejected(item.change, RejectCode.INVALID_RECORD, message)
        elif clinic != actor.clinic_id:
            message = "This patient belongs to another clinic"
            results[item.index] = _rejected(item.change, RejectCode.NOT_IN_SCOPE, message)
        else:
            in_scope.append(item)
    return in_scope


def _plan(
    in_scope: list[_Incoming],
    stored: list[db.Stored],
    hashes: dict[uuid.UUID, bytes],
    results: dict[int, ChangeResult],
) -> list[_Incoming]:
    """Answer every reading; return those to insert (the first of each id and natural key not yet stored).

    A reading stored already, by id with the same content or by natural key, is ``applied``; by id with
    other content ``signed_immutable``. A second copy within the batch follows the first: same content →
    ``applied``, same id with other content → ``signed_immutable``. A reading to insert is ``applied``: if a
    concurrent push stores the same measurement first, ON CONFLICT keeps that one, and it is there either way.
    """
    by_id = {s.reading_id: s for s in stored}
    by_key = {s.natural_key: s for s in stored}
    first_by_id: dict[uuid.UUID, _Incoming] = {}
    first_keys: set[tuple[str, str, str, int, datetime]] = set()
    to_insert: list[_Incoming] = []
    for item in in_scope:
        rid = item.reading.id
        if rid in by_id:
            same = hashes[rid] == item.content_hash
            results[item.index] = _applied(item.change) if same else _immutable(item.change)
        elif rid in first_by_id:
            same = first_by_id[rid].content_hash == item.content_hash
            results[item.index] = _applied(item.change) if same else _immutable(item.change)
        elif item.key in by_key or item.key in first_keys:
            results[item.index] = _applied(item.change)  # the same measurement under another id: the first stays
        else:
            first_by_id[rid] = item
            first_keys.add(item.key)
            to_insert.append(item)
            results[item.index] = _applied(item.change)
    return to_insert


def _immutable(change: Change) -> ChangeResult:
    return _rejected(
        change,
        RejectCode.SIGNED_IMMUTABLE,
        f"Reading {change.id} is already stored with other content; a reading cannot be changed",
    )


async def _audit(
    conn: asyncpg.Connection, actor: Actor, batch_id: uuid.UUID, results: dict[int, ChangeResult], stored: int
) -> None:
    """One audit row per batch with readings (not one per reading: they are measurements, not edits)."""
    rejected = sum(1 for r in results.values() if r.status is ChangeStatus.REJECTED)
    await audit_log.record_many(
        conn,
        actor,
        [
            {
                "action": "sync.reading.ingest",
                "entity_type": "sync_batch",
                "entity_id": str(batch_id),
                "details": {
                    "readings": len(results),
                    "stored": stored,
                    "already_stored": len(results) - rejected - stored,
                    "rejected": rejected,
                },
            }
        ],
    )


async def _stored_hashes(conn: asyncpg.Connection, reading_ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    """The content hash of each of these stored readings (rebuilt from its rows), by id."""
    if not reading_ids:
        return {}
    grouped: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in await db.readings_rows(conn, reading_ids):
        grouped.setdefault(row["reading_id"], []).append(row)
    return stored_content_hashes(grouped)


def stored_content_hashes(grouped: Mapping[Any, Sequence[Mapping[str, Any]]]) -> dict[Any, bytes]:
    """`_content_hash` of stored readings, each rebuilt from its rows (in value order), by reading id.

    Equal to the hash of the reading as it was pushed: the rows keep every field (decimals as their text).
    The downgrade of migration 2026_11_26_0013 keeps its own copy of this formula (it puts the stored hashes
    back); tests/sync_server/test_wearables.py checks the two agree.
    """
    return {rid: _content_hash(reading_facts(_fields_of(rows))) for rid, rows in grouped.items()}


def _fields_of(rows: Sequence[Mapping[str, Any]]) -> Reading:
    first = rows[0]
    return Reading(
        id=first["reading_id"],
        patient_id=first["patient_id"],
        encounter_id=first["encounter_id"],
        device_id=first["device_id"],
        device_name=first["device_name"],
        characteristic=first["characteristic"],
        measured_at=first["time"],
        device_time=first["device_time"],
        time_source=first["time_source"],
        sequence=first["sequence"],
        values=_values_of(rows),
        raw_hex=first["raw_hex"],
        received_at=first["received_at"],
    )


def _values_of(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A stored reading's values (its rows in value order) as the reading's ``values`` field carries them."""
    return [
        {
            "metric": r["metric"],
            "value": r["value_text"],
            "unit": r["unit"],
            "ucum": r["ucum"],
            "original_value": r["original_value"],
            "original_unit": r["original_unit"],
        }
        for r in rows
    ]


def _json_time(at: datetime) -> str:
    # pydantic's JSON form of an aware UTC datetime (what `reading_change_fields` writes)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def pulled_fields(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The change fields of a stored reading, from its rows in value order: exactly
    ``reading_change_fields(_fields_of(rows))`` (tests/sync_server/test_wearables.py compares them), built
    straight from the columns (the stored rows were validated when pushed), without rebuilding the
    model for each reading of a new PC's first pull."""
    first = rows[0]
    encounter = first["encounter_id"]
    return {
        "patient_id": str(first["patient_id"]),
        "encounter_id": None if encounter is None else str(encounter),
        "device_id": first["device_id"],
        "device_name": first["device_name"],
        "characteristic": first["characteristic"],
        "measured_at": _json_time(first["time"]),
        "device_time": first["device_time"],
        "time_source": first["time_source"],
        "sequence": first["sequence"],
        "values": _values_of(rows),
        "raw_hex": first["raw_hex"],
        "received_at": _json_time(first["received_at"]),
    }


async def pulled(conn: asyncpg.Connection, feed_rows: Sequence[asyncpg.Record]) -> dict[uuid.UUID, PulledChange]:
    """The pull-feed change of each reading among these feed rows (kind ``reading``), by reading id."""
    wanted = {r["record_id"]: r for r in feed_rows if r["kind"] == RecordKind.READING}
    grouped: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in await db.readings_rows(conn, list(wanted)):
        grouped.setdefault(row["reading_id"], []).append(row)
    out = {}
    for reading_id, rows in grouped.items():
        feed = wanted[reading_id]
        fields = pulled_fields(rows)
        hlc = rows[0]["hlc"]
        out[reading_id] = PulledChange(
            kind=RecordKind.READING,
            id=reading_id,
            op=Op.UPSERT,
            hlc=hlc,
            fields=fields,
            field_hlcs=dict.fromkeys(fields, hlc),
            seq=feed["seq"],
            server_version=SERVER_VERSION,
            batch_id=feed["batch_id"],
        )
    return out


async def time_series_mode(pool: asyncpg.Pool) -> str | None:
    """How wearable data is stored (``timescaledb`` or ``native_partitions``), for the readiness probe."""
    async with pool.acquire() as conn:
        return await db.time_series_mode(conn)


FOLD_INTERVAL_S = 1.0
"""Longest the daily-averages folder sleeps with nothing queued; a queued day waits at most about this long
(plus the folding itself) before `wearable_daily_avg` has it. A health-graph page never waits for it."""
FOLD_CHUNK = 5
"""Queued batches folded per transaction (about 5,000 readings): short transactions, so a health-graph page
that needs the fold lock waits little."""


async def fold_daily(pool: asyncpg.Pool, *, chunk: int = FOLD_CHUNK) -> int:
    """Fold every queued batch's days into ``wearable_daily_avg`` now; how many queued batches were folded.

    Each chunk is its own transaction (the queue rows go with the averages they produced). Safe to run from
    several processes at once: one refresher holds the fold lock at a time, the others wait for it.
    """
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            folded = await db.fold_daily(conn, chunk)
        total += folded
        if folded < chunk:
            return total


async def refresh_patient(conn: asyncpg.Connection, patient_id: uuid.UUID) -> None:
    """Bring the patient's daily averages up to date with every committed reading (before showing them)."""
    await db.refresh_patient(conn, patient_id)


class DailyFolder:
    """The API process's background task that keeps ``wearable_daily_avg`` up to date (native path).

    A push only queues the days it stored readings for (`db.queue_daily`); this task folds the queue every
    `FOLD_INTERVAL_S` (and straight again while there is more). An error (database restarting, …) is logged
    and retried on the next round: the queue keeps the days, nothing is lost.
    """

    def __init__(self, pool: asyncpg.Pool, interval: float = FOLD_INTERVAL_S) -> None:
        self._pool = pool
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wearable-daily-folder")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await fold_daily(self._pool)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                _log.warning("daily averages not folded this round (retried): %s", exc)
            await asyncio.sleep(self._interval)
