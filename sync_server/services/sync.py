"""Sync: apply a pushed batch change by change (per-field LWW for patients), and page the clinic's feed.

A push never fails as a whole for one bad change: each change runs in its own savepoint and gets its own
result (applied / merged / rejected + code). The answer is stored under the batch id, so a retried batch
returns the first answer and writes nothing twice.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from pydantic import ValidationError

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, check_incoming, decode, encode, system_wall_ms
from shared.records.patient import PatientFields
from shared.records.validation import violation_from
from shared.sync.merge import DELETED_FIELD, MergeResult, Side, edits_of, merge_patient
from shared.sync.protocol import (
    Change,
    ChangeResult,
    ChangeStatus,
    PulledChange,
    PullResponse,
    PushRequest,
    PushResponse,
    RecordKind,
    RejectCode,
)
from sync_server import errors
from sync_server.db import audit
from sync_server.db import duplicates as duplicates_db
from sync_server.db import patients as patients_db
from sync_server.db import sync as sync_db
from sync_server.services.context import Actor

IDENTITY_FIELDS = {"name", "mobile", "year_of_birth", "abha_number", "abha_address", DELETED_FIELD}
"""Edits to these fields can make (or unmake) two patients look like the same person."""


class _Reject(Exception):
    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


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


async def push(conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC) -> PushResponse:
    check_versions(schema_version=req.schema_version, protocol_version=req.protocol_version)
    if req.device_id != actor.user_id:
        raise errors.BatchDeviceMismatch()
    stored = await sync_db.lock_batch(conn, req.batch_id)
    if stored is not None:
        if stored["device_id"] != actor.user_id:
            raise errors.BatchDeviceMismatch("This batch id was already used by another device")
        return PushResponse.model_validate(json.loads(stored["response"]))
    results: list[ChangeResult] = []
    changed: list[uuid.UUID] = []
    history: list[tuple[Any, ...]] = []
    entries: list[dict[str, Any]] = []
    for change in req.changes:
        try:
            async with conn.transaction():  # a savepoint: a rejected change leaves no trace
                result, rows, wrote = await _apply(conn, actor, change, clock)
        except _Reject as rej:
            result = ChangeResult(
                kind=change.kind,
                id=change.id,
                status=ChangeStatus.REJECTED,
                reason=rej.code,
                message=rej.message[:2000],
            )
            rows, wrote = [], False
        results.append(result)
        history += rows
        if wrote:
            changed.append(change.id)
            entries.append(
                {
                    "action": f"sync.{change.kind}.{change.op}",
                    "entity_type": str(change.kind),
                    "entity_id": str(change.id),
                    "details": {"status": str(result.status), "batch": str(req.batch_id)},
                }
            )
    await sync_db.add_history(conn, history)
    response = PushResponse(batch_id=req.batch_id, results=results, server_hlc=encode(clock.now()))
    await sync_db.store_batch(
        conn,
        batch_id=req.batch_id,
        device_id=actor.user_id,
        clinic_id=actor.clinic_id,
        response=response.model_dump(mode="json"),
    )
    await audit.append_many(
        conn,
        clinic_id=actor.clinic_id,
        actor_id=actor.user_id,
        actor_role=actor.role,
        client_ip=actor.meta.client_ip,
        user_agent=actor.meta.user_agent,
        entries=entries,
    )
    # Last: the feed bump holds the clinic's feed lock until commit (db.sync.bump_feed explains why).
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.PATIENT, _unique(changed), req.batch_id)
    return response


def _unique(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


async def _apply(
    conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC
) -> tuple[ChangeResult, list[tuple[Any, ...]], bool]:
    """Merge one change into the stored record. Returns (result, history rows, whether it wrote)."""
    if change.kind is not RecordKind.PATIENT:
        raise _Reject(RejectCode.INVALID_RECORD, f"record kind {change.kind} is not synced by this server yet")
    stamp = decode(change.hlc)
    verdict = check_incoming(stamp, system_wall_ms())
    if not verdict.accepted:
        raise _Reject(RejectCode.CLOCK_SKEW, verdict.to_error().message)
    clock.update(stamp)
    row = await patients_db.lock_for_sync(conn, change.id)
    if row is not None and row["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This patient belongs to another clinic")
    current, current_hlcs = patients_db.state_of(row) if row is not None else ({}, {})
    incoming, incoming_hlcs = edits_of(change)
    try:
        merged = merge_patient(current, current_hlcs, incoming, incoming_hlcs)
    except ValueError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, str(exc)) from None
    if row is not None and merged.fields == current and merged.field_hlcs == current_hlcs:
        # A replay or an entirely older edit: nothing to write; losing incoming values still go to history.
        return (
            ChangeResult(kind=change.kind, id=change.id, status=merged.change_status, server_version=row["version"]),
            _history(actor, change, merged),
            False,
        )
    values = {k: v for k, v in merged.fields.items() if k != DELETED_FIELD}
    try:
        typed = PatientFields.model_validate(values)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    if typed.model_dump(mode="json", include=set(values)) != values:
        raise _Reject(RejectCode.INVALID_RECORD, "field values are not in canonical form; update the app")
    version = await patients_db.write_synced(
        conn,
        patient_id=change.id,
        clinic_id=actor.clinic_id,
        values={**typed.model_dump(), DELETED_FIELD: merged.fields.get(DELETED_FIELD, False)},
        field_hlcs=merged.field_hlcs,
        hlc=max(merged.field_hlcs.values()),
        exists=row is not None,
    )
    if set(incoming) & IDENTITY_FIELDS:
        await duplicates_db.detect(conn, actor.clinic_id, change.id)  # flagged for a person to decide; never merged
    result = ChangeResult(kind=change.kind, id=change.id, status=merged.change_status, server_version=version)
    return result, _history(actor, change, merged), True


def _history(actor: Actor, change: Change, merged: MergeResult) -> list[tuple[Any, ...]]:
    """Every value that lost the merge, kept with the stamp that beat it (conflict = the incoming one lost)."""
    return [
        (
            actor.clinic_id,
            "patient",
            change.id,
            lost.field,
            json.dumps(lost.value),
            lost.hlc,
            merged.field_hlcs[lost.field],
            lost.side is Side.INCOMING,
            str(actor.user_id),
        )
        for lost in merged.lost
    ]


def parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise errors.ProblemError("The cursor is not one this server gave out", field="cursor")
    return int(cursor)


async def remaining_after(conn: asyncpg.Connection, actor: Actor, page: PullResponse) -> int:
    """Feed entries still to fetch after this page (0 on the last page)."""
    if not page.has_more:
        return 0
    return await sync_db.feed_remaining(conn, actor.clinic_id, parse_cursor(page.next_cursor))


async def pull(conn: asyncpg.Connection, actor: Actor, *, cursor: str | None, limit: int, clock: HLC) -> PullResponse:
    after = parse_cursor(cursor)
    rows = await sync_db.feed_page(conn, actor.clinic_id, after, limit + 1)
    page = rows[:limit]
    changes = []
    for row in page:
        fields, stamps = patients_db.state_of(row)
        if row["deleted"] and DELETED_FIELD not in stamps:
            continue  # cannot happen for synced rows; guards hand-edited data
        changes.append(
            PulledChange(
                kind=RecordKind.PATIENT,
                id=row["record_id"],
                op="upsert",
                hlc=row["hlc"],
                fields=fields,
                field_hlcs=stamps,
                seq=row["seq"],
                server_version=row["version"],
                batch_id=row["batch_id"],
            )
        )
    next_cursor = str(page[-1]["seq"]) if page else str(after)
    return PullResponse(
        changes=changes, next_cursor=next_cursor, has_more=len(rows) > limit, server_hlc=encode(clock.now())
    )


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
