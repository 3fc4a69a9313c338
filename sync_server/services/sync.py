"""Sync: apply a pushed batch change by change (per-field LWW for patients), and page the clinic's feed.

A push never fails as a whole for one bad change: each change gets its own result (applied / merged /
rejected + code). Every reason to reject a change is found before anything of it is written, so a rejected
change leaves no trace. The answer is stored under the batch id, so a retried batch returns the first
answer and writes nothing twice.

**Round trips.** A batch is decided change by change, in order, in memory: the batch's stored patients are
read and locked with one query first, and each change merges into the state the changes before it left.
The writes are then sent in *runs*: one statement inserts a run's new patients, one updates its existing
ones, one looks for duplicates of the patients whose identity fields a change carried. A run ends before a
change whose write could make the set-wise steps differ from writing and checking each change in turn (see
`_Run.takes`), so the stored rows, versions and flagged pairs are the same as one change at a time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, encode
from shared.records.patient import PatientFields, PatientUpdate
from shared.records.validation import violation_from
from shared.sync.merge import (
    PATIENT_FIELDS,
    MergeOutcome,
    MergeResult,
    edits_of,
    merge_patient,
)
from shared.sync.protocol import (
    DELETED_FIELD,
    Change,
    ChangeResult,
    ChangeStatus,
    Op,
    PulledChange,
    PullResponse,
    PushRequest,
    PushResponse,
    RecordKind,
    RejectCode,
)
from sync_server import errors
from sync_server.db import patients as patients_db
from sync_server.db import sync as sync_db
from sync_server.db.feed_listener import FeedListener, TooManyWaiters
from sync_server.services import audit as audit_log
from sync_server.services import encounter_sync, readings, rx_sync
from sync_server.services.change_results import RejectChange as _Reject
from sync_server.services.change_results import accept_stamp, lost_values
from sync_server.services.context import Actor
from sync_server.signing.issuer import SigningContext

IDENTITY_FIELDS = {"name", "mobile", "year_of_birth", "abha_number", "abha_address", DELETED_FIELD}
"""Edits to these fields can make (or unmake) two patients look like the same person."""

_MATCH_KEYS = ("abha_number", "abha_address", "mobile")
"""Fields at least one of which two patients must share to be flagged as duplicates (`sync_db.detect_duplicates`)."""


_OWN_MODULE = {RecordKind.READING, *rx_sync.KINDS, *encounter_sync.KINDS}
"""Kinds pushed through their own module (services.readings, services.encounter_sync), after the patients."""


def check_versions(*, schema_version: int, protocol_version: int) -> None:
    """Refuse a client of another schema or protocol version with a sentence the user can act on."""
    if schema_version < RECORD_SCHEMA_VERSION or protocol_version < PROTOCOL_VERSION:
        raise errors.ClientOutdated(
            f"This app speaks sync protocol {protocol_version} / record schema {schema_version}; the server needs "
            f"{PROTOCOL_VERSION} / {RECORD_SCHEMA_VERSION}. Update IntegMed on this PC; nothing waiting to be "
            "sent is lost."
        )
    if schema_version > RECORD_SCHEMA_VERSION or protocol_version > PROTOCOL_VERSION:
        raise errors.ServerOutdated(
            f"This app speaks sync protocol {protocol_version} / record schema {schema_version}; the server only "
            f"{PROTOCOL_VERSION} / {RECORD_SCHEMA_VERSION}. The server must be updated; nothing is lost."
        )


@dataclass
class _Stored:
    """A patient as the batch has left it so far: its stamped fields, version, clinic and match keys."""

    fields: dict[str, Any]
    field_hlcs: dict[str, str]
    version: int
    clinic_id: uuid.UUID
    keys: set[tuple[str, Any]]  # `_keys` of its stored columns


@dataclass
class _Write:
    """A change that wins at least one field: what to store, and where its result goes."""

    index: int
    change: Change
    merged: MergeResult
    values: dict[str, Any]  # typed field values and ``deleted``, as `sync_db.write_patients` stores them
    before: _Stored | None  # the stored state it merged into; None for a new patient
    detect: bool  # the change carries identity fields: look for duplicates once written
    keys: set[tuple[str, Any]] = field(default_factory=set)  # `_keys` of ``values``


def _keys(columns: Any) -> set[tuple[str, Any]]:
    """The non-null ABHA number, ABHA address and mobile of stored columns (a row, or values as written)."""
    return {(name, columns[name]) for name in _MATCH_KEYS if columns.get(name) is not None}


@dataclass
class _Run:
    """Writes sent together: one insert, one update and one duplicate search for all of them.

    Writing a run and then searching for duplicates of its patients gives the result of writing and searching
    change by change, as long as (1) no patient is written twice in the run and (2) no patient whose search
    comes first in the run could have matched the *earlier* state of a patient updated later in the run
    (a one-at-a-time search would have seen that state). (2) is checked conservatively: a match needs a
    shared ABHA number, ABHA address or mobile.
    """

    writes: list[_Write] = field(default_factory=list)
    ids: set[uuid.UUID] = field(default_factory=set)
    searched: set[tuple[str, Any]] = field(default_factory=set)  # match keys of the patients searched so far

    def takes(self, write: _Write) -> bool:
        # (1) is kept by the caller, which stores the run before deciding a change of a patient already in it.
        return not (write.detect and write.before is not None and self.searched & write.before.keys)

    def add(self, write: _Write) -> None:
        self.writes.append(write)
        self.ids.add(write.change.id)
        if write.detect:
            self.searched |= write.keys


async def push(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC, signing: SigningContext | None = None
) -> PushResponse:
    check_versions(schema_version=req.schema_version, protocol_version=req.protocol_version)
    if req.device_id != actor.user_id:
        raise errors.BatchDeviceMismatch()
    stored = await sync_db.lock_batch(conn, req.batch_id)
    if stored is not None:
        if stored["device_id"] != actor.user_id:
            raise errors.BatchDeviceMismatch("This batch id was already used by another device")
        return PushResponse.model_validate_json(sync_db.batch_answer(stored))
    ids = [c.id for c in req.changes if c.kind is RecordKind.PATIENT]
    states = {row["id"]: _stored(row) for row in await sync_db.lock_patients(conn, ids)}
    results: list[ChangeResult | None] = []
    changed: list[uuid.UUID] = []
    history: list[tuple[Any, ...]] = []
    entries: list[dict[str, Any]] = []
    run = _Run()
    batch = str(req.batch_id)
    actions: dict[tuple[RecordKind, Op], tuple[str, str]] = {}  # (action, entity type) of each kind and op
    for index, change in enumerate(req.changes):
        if change.kind in _OWN_MODULE:
            results.append(None)  # decided and stored by its own module, after the patients (see below)
            continue
        if change.id in run.ids:  # its state and version are those its earlier write leaves: store that first
            await _flush(conn, actor, run, states, results)
            run = _Run()
        try:
            result, rows, write = _decide(actor, change, clock, states.get(change.id), index)
        except _Reject as rej:
            result = ChangeResult(
                kind=change.kind,
                id=change.id,
                status=ChangeStatus.REJECTED,
                reason=rej.code,
                message=rej.message[:2000],
            )
            rows, write = [], None
        results.append(result)
        history += rows
        if write is None:
            continue
        if not run.takes(write):
            await _flush(conn, actor, run, states, results)
            run = _Run()
        run.add(write)
        # What reading the row back would give (`patients_db.state_of`); the version comes when the run is stored.
        # A merge never changes the states it is given, so the merged dicts are shared, not copied.
        merged = write.merged
        states[change.id] = _Stored(merged.fields, merged.field_hlcs, 0, actor.clinic_id, write.keys)
        changed.append(change.id)
        action = actions.get((change.kind, change.op))
        if action is None:
            action = actions[(change.kind, change.op)] = (f"sync.{change.kind}.{change.op}", str(change.kind))
        entries.append(
            {
                "action": action[0],
                "entity_type": action[1],
                "entity_id": str(change.id),
                "details": {"status": str(merged.change_status), "batch": batch},
            }
        )
    await _flush(conn, actor, run, states, results)
    # Then the kinds with their own module, in dependency order (a prescription needs its encounter).
    for index, own_result in [
        *await encounter_sync.push(conn, actor, req, clock),
        *await rx_sync.push(conn, actor, req, clock, signing),
        *await readings.push(conn, actor, req, clock),
    ]:
        results[index] = own_result
    await sync_db.add_history(conn, history)
    answered = [r for r in results if r is not None]
    assert len(answered) == len(req.changes), "every change has its result once its run is stored"
    response = PushResponse(batch_id=req.batch_id, results=answered, server_hlc=encode(clock.now()))
    await sync_db.store_batch(
        conn,
        batch_id=req.batch_id,
        device_id=actor.user_id,
        clinic_id=actor.clinic_id,
        response=response.model_dump_json().encode(),
    )
    await audit_log.record_many(
        conn,
        actor,
        entries,
    )
    # Last: the feed bump holds the clinic's feed lock until commit (db.sync.bump_feed explains why).
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.PATIENT, _unique(changed), req.batch_id)
    return response


def _unique(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


def _stored(row: asyncpg.Record) -> _Stored:
    fields, stamps = patients_db.state_of(row)
    return _Stored(fields, stamps, row["version"], row["clinic_id"], _keys(row))


async def _flush(
    conn: asyncpg.Connection,
    actor: Actor,
    run: _Run,
    states: dict[uuid.UUID, _Stored],
    results: list[ChangeResult | None],
) -> None:
    """Store a run's writes, search for duplicates of the patients they touched, and fill in their results."""
    if not run.writes:
        return
    versions = await sync_db.write_patients(
        conn,
        actor.clinic_id,
        [(w.change.id, w.values, w.merged.field_hlcs, w.before is not None) for w in run.writes],
    )
    # A patient without ABHA number, ABHA address or mobile matches nobody (`sync_db.detect_duplicates`).
    searched = [w.change.id for w in run.writes if w.detect and w.keys]
    if searched:
        await sync_db.detect_duplicates(conn, actor.clinic_id, searched)  # flagged for a person; never merged
    for w in run.writes:
        pid = w.change.id
        version = states[pid].version = versions[pid]
        # Built without validation: an applied or merged status with the version just written (always >= 1).
        results[w.index] = ChangeResult.model_construct(
            kind=w.change.kind, id=pid, status=w.merged.change_status, reason=None, message=None, server_version=version
        )


def _decide(
    actor: Actor, change: Change, clock: HLC, row: _Stored | None, index: int
) -> tuple[ChangeResult | None, list[tuple[Any, ...]], _Write | None]:
    """Merge one change into the state the batch has left so far, without writing anything.

    Returns:
        (the result when the change writes nothing, else None; history rows; the write, if any).

    Raises:
        _Reject: the change is refused (nothing of it is written).
    """
    if change.kind is not RecordKind.PATIENT:
        raise _Reject(RejectCode.INVALID_RECORD, f"record kind {change.kind} is not synced by this server yet")
    accept_stamp(change, clock)
    if row is not None and row.clinic_id != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This patient belongs to another clinic")
    if row is None and change.op is Op.UPSERT:
        # A patient neither stored nor written earlier in the batch (the bulk of a first push): what
        # `merge_patient` gives against an empty state, without its checks that `Change` validation already
        # made (same keys in fields and field_hlcs, every stamp decodable, at least one field).
        incoming = change.fields
        unknown = incoming.keys() - PATIENT_FIELDS
        if unknown:
            raise _Reject(RejectCode.INVALID_RECORD, f"not patient fields: {', '.join(sorted(unknown))}")
        names = sorted(incoming)
        incoming_hlcs = change.field_hlcs
        merged = MergeResult(
            {name: incoming[name] for name in names},
            {name: incoming_hlcs[name] for name in names},
            (),
            MergeOutcome.APPLIED,
        )
        values = {k: v for k, v in merged.fields.items() if k != DELETED_FIELD}
        checked = _checked(values, {})
        checked[DELETED_FIELD] = merged.fields.get(DELETED_FIELD, False)
        detect = not incoming.keys().isdisjoint(IDENTITY_FIELDS)
        return None, [], _Write(index, change, merged, checked, None, detect, _keys(checked))
    current, current_hlcs = (row.fields, row.field_hlcs) if row is not None else ({}, {})
    incoming, incoming_hlcs = edits_of(change)
    try:
        merged = merge_patient(current, current_hlcs, incoming, incoming_hlcs)
    except ValueError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, str(exc)) from None
    if row is not None and merged.fields == current and merged.field_hlcs == current_hlcs:
        # A replay or an entirely older edit: nothing to write; losing incoming values still go to history.
        result = ChangeResult(kind=change.kind, id=change.id, status=merged.change_status, server_version=row.version)
        return result, lost_values(actor, change, merged), None
    values = {k: v for k, v in merged.fields.items() if k != DELETED_FIELD}
    checked = _checked(values, current)
    checked[DELETED_FIELD] = merged.fields.get(DELETED_FIELD, False)
    detect = bool(set(incoming) & IDENTITY_FIELDS)
    return None, lost_values(actor, change, merged), _Write(index, change, merged, checked, row, detect, _keys(checked))


_PATIENT_FIELD_NAMES = tuple(PatientFields.model_fields)
"""The columns `_checked` fills, in `PatientFields` order."""

_CROSS_CHECKED = {"year_of_birth", "date_of_birth"}
"""Fields of `PatientFields`' whole-record rule (a date of birth falls in the year of birth, not in the future)."""


def _checked(values: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The merged patient's values as they are written (a `date` for ``date_of_birth``), once validated.

    A stored patient was validated when it was written, so an edit that keeps its year and date of birth
    only needs the fields it changes checked (`PatientUpdate`: the same field types, required ones not
    clearable). Anything else is validated as a whole record. Either way a value must already be in its
    canonical form (what the app sends), or the change is refused.

    Raises:
        _Reject: an invalid or non-canonical value.
    """
    changed = {k: v for k, v in values.items() if k not in current or current[k] != v} if current else values
    partial = bool(current) and not (changed.keys() & _CROSS_CHECKED)
    try:
        model = PatientUpdate.model_validate(changed) if partial else PatientFields.model_validate(values)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    canonical = model.model_dump(mode="json", include=set(changed) if partial else set(values))
    if canonical != (changed if partial else values):
        raise _Reject(RejectCode.INVALID_RECORD, "field values are not in canonical form; update the app")
    out = {name: values.get(name) for name in _PATIENT_FIELD_NAMES}
    if out["date_of_birth"] is not None:
        out["date_of_birth"] = date.fromisoformat(out["date_of_birth"])
    return out


def parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise errors.ProblemError("The cursor is not one this server gave out", field="cursor")
    return int(cursor)


async def remaining_after(conn: asyncpg.Connection, actor: Actor, page: Page) -> int:
    """Feed entries still to fetch after this page (0 on the last page)."""
    if not page.has_more:
        return 0
    return await sync_db.feed_remaining(conn, actor.clinic_id, parse_cursor(page.next_cursor))


SIGN_IN_ENDED = "This sign-in has ended: sign in again"
"""The 401 detail for a token whose device or session has ended (as `api.deps.current_actor` words it)."""

PAGE_CHUNK = 500
"""Feed entries read and turned into JSON at a time while a page is built: what the page's objects cost in
memory at most (a page of 5000 held all its rows, dicts and models at once: +30 MiB on the API's peak RSS)."""

_CHANGES_JSON = TypeAdapter(list[PulledChange])
_EMPTY_HEAD = b'{"changes":[]'


@dataclass(frozen=True)
class Page:
    """One pull page, as its `PullResponse` JSON body (built chunk by chunk) and what the route needs of it."""

    body: bytes
    count: int  # changes in the body
    next_cursor: str
    has_more: bool

    def response(self) -> PullResponse:
        """The page as a model (tests, tools): what the body says."""
        return PullResponse.model_validate_json(self.body)


async def pull(
    conn: asyncpg.Connection, actor: Actor, *, cursor: str | None, limit: int, clock: HLC, chunk: int = PAGE_CHUNK
) -> Page:
    """The page after ``cursor`` for a device, whose enrolment is checked by the page's first statement.

    The entries are read ``chunk`` (`PAGE_CHUNK`) at a time, each chunk after the last seq of the one before,
    and each chunk's changes become JSON before the next is read. A chunk is what a page of that size would
    be: the entries of one statement, in seq order, with the state their records have when it runs.

    Raises:
        errors.Unauthenticated: the device is revoked or no longer of the token's clinic.
    """
    after = parse_cursor(cursor)
    rows = await sync_db.device_feed_page(conn, actor.user_id, actor.clinic_id, after, min(limit, chunk) + 1)
    if rows is None:
        raise errors.Unauthenticated(SIGN_IN_ENDED, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    parts: list[bytes] = [b'{"changes":[']  # the body's pieces, joined once at the end (one copy of the body)
    entries = count = 0
    while True:
        want = min(limit - entries, chunk)
        entries_now, more = rows[:want], len(rows) > want
        changes = await _pulled_changes(conn, entries_now)
        if changes:
            if count:
                parts.append(b",")
            parts.append(_CHANGES_JSON.dump_json(changes)[1:-1])  # the list's items, without its brackets
            count += len(changes)
        if entries_now:
            after = entries_now[-1]["seq"]
            entries += len(entries_now)
        del changes, entries_now
        if not more or entries >= limit:
            break
        rows = await sync_db.feed_page(conn, actor.clinic_id, after, min(limit - entries, chunk) + 1)
    next_cursor = str(after)
    head = PullResponse.model_construct(
        changes=[], next_cursor=next_cursor, has_more=more, server_hlc=encode(clock.now())
    ).model_dump_json()
    assert head.startswith(_EMPTY_HEAD.decode()), "PullResponse's changes come first"
    parts += [b"]", head[len(_EMPTY_HEAD) :].encode()]
    return Page(b"".join(parts), count, next_cursor, more)


async def _pulled_changes(conn: asyncpg.Connection, page: list[asyncpg.Record]) -> list[PulledChange]:
    """The changes of these feed entries, in their order (an entry whose record is not there is left out)."""
    changes = []
    pulled_readings = await readings.pulled(conn, page)
    pulled_encounters = await encounter_sync.pulled(conn, page)
    pulled_rx = await rx_sync.pulled(conn, page)
    for row in page:
        if row["kind"] in rx_sync.KINDS:
            if (row["kind"], row["record_id"]) in pulled_rx:
                changes.append(pulled_rx[(row["kind"], row["record_id"])])
            continue
        if row["kind"] in encounter_sync.KINDS:
            if row["record_id"] in pulled_encounters:
                changes.append(pulled_encounters[row["record_id"]])
            continue
        if row["kind"] == RecordKind.READING:
            if row["record_id"] in pulled_readings:
                changes.append(pulled_readings[row["record_id"]])
            continue
        fields, stamps = patients_db.state_of(row)
        if row["deleted"] and DELETED_FIELD not in stamps:
            continue  # cannot happen for synced rows; guards hand-edited data
        # Built without validation: these are stored rows that a validated push (or the server) wrote, and
        # validating a page again (every stamp decoded) was a fifth of the server's pull CPU.
        changes.append(
            PulledChange.model_construct(
                kind=RecordKind.PATIENT,
                id=row["record_id"],
                op=Op.UPSERT,
                hlc=row["hlc"],
                fields=fields,
                field_hlcs=stamps,
                seq=row["seq"],
                server_version=row["version"],
                batch_id=row["batch_id"],
            )
        )
    return changes


MAX_WAIT_S = 25.0
"""Longest a pull may wait for a change (below the usual 30-60 s idle timeouts of proxies)."""


class WaitersFull(errors.ProblemError):
    status = 503
    code = "sync.waiters_full"
    title = "Too many waiting pulls"


async def pull_waiting(
    pool: asyncpg.Pool,
    listener: FeedListener | None,
    actor: Actor,
    *,
    cursor: str | None,
    limit: int,
    wait: float,
    clock: HLC,
    gone: Callable[[], Awaitable[object]] | None = None,
) -> tuple[Page, int]:
    """A page after ``cursor`` and the count after it; with ``wait`` > 0 and nothing new, wait for a commit.

    Each read takes a pooled connection for its statements only (`_read_page`); none is held while waiting. The
    clinic's ticket is taken before the first read (`FeedListener` explains why no commit can slip between).
    At the deadline the answer is an empty page with the same cursor. Without a live listener (database
    link lost) the wait is a short sleep and a second read, so a client never spins. ``gone`` returns when the
    client hangs up: its wait ends then, so a dead client does not hold one of the bounded waiting places.
    When the server is stopping (``listener.draining``) a pull does not wait, and a waiting one is woken and
    answers the page it read (200, same cursor): the PC pulls again later, and the server stops at once.
    """
    ticket = listener.ticket(actor.clinic_id) if wait > 0 and listener is not None else None
    page, remaining = await _read_page(pool, actor, cursor=cursor, limit=limit, clock=clock)
    if ticket is None or listener is None or page.count or page.has_more or listener.draining:
        return page, remaining
    try:
        with listener.waiter():
            woken = asyncio.ensure_future(ticket.wait() if listener.connected else asyncio.sleep(min(wait, 1.0)))
            left = asyncio.ensure_future(gone()) if gone is not None else None
            try:
                await asyncio.wait(
                    [t for t in (woken, left) if t is not None],
                    timeout=min(wait, MAX_WAIT_S),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for task in (woken, left):
                    if task is not None and not task.done():
                        task.cancel()
            if not woken.done() or woken.cancelled() or listener.draining:
                return page, remaining  # the deadline, the client left or the server stops: the same empty page
    except TooManyWaiters as exc:
        raise WaitersFull(
            f"This server holds {listener.max_waiters} waiting pulls already; pull without waiting or retry later",
            headers={"Retry-After": "5"},
        ) from exc
    return await _read_page(pool, actor, cursor=cursor, limit=limit, clock=clock)


async def _read_page(
    pool: asyncpg.Pool, actor: Actor, *, cursor: str | None, limit: int, clock: HLC
) -> tuple[Page, int]:
    """A page and the count after it, on one pooled connection and without a transaction of its own.

    The entries and their patients' state come from one statement (one snapshot); the rows of the other kinds
    and the count are read after it, so they are never older than their entries: a record changed meanwhile
    comes as it is now, and again with its later entry, where it merges to nothing. An idle PC's pull is
    one statement (`sync_db.device_feed_page`, which also checks the device).
    """
    async with pool.acquire() as conn:
        page = await pull(conn, actor, cursor=cursor, limit=limit, clock=clock)
        return page, await remaining_after(conn, actor, page)


async def history(conn: asyncpg.Connection, actor: Actor, patient_id: uuid.UUID) -> list[dict[str, Any]]:
    if await patients_db.get(conn, actor.clinic_id, patient_id) is None:
        raise errors.NotFound("No patient with this id in your clinic")
    rows = await sync_db.history(conn, actor.clinic_id, "patient", patient_id)
    return [
        {
            "field": r["field"],
            "value": json.loads(r["value"]) if r["value"] is not None else None,
            "hlc": r["hlc"],
            "replaced_by_hlc": r["replaced_by_hlc"],
            "conflict": r["lost"],
            "source": r["source"],
            "recorded_at": r["recorded_at"],
        }
        for r in rows
    ]
