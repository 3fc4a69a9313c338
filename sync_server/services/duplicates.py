"""Duplicate patients: list the pairs sync detected, merge one into the other, or mark a pair as distinct.

Two PCs of a clinic may register the same person while offline. Sync never merges them by itself (DESIGN.md
§3); it records the pair (same ABHA number or address, or same mobile + name + year of birth), and a person
decides. A merge keeps one record, copies into it the fields it lacks from the other, and tombstones the
other with ``merged_into`` pointing at the kept one; both changes reach every PC through the feed, and the
merged record's values stay in the database. Every merge and dismissal is audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.clock import HLC, encode
from shared.records.patient import Patient, PatientFields
from shared.sync.merge import merge_patient
from shared.sync.protocol import DELETED_FIELD
from sync_server import errors
from sync_server.db import duplicates as duplicates_db
from sync_server.db import patients as patients_db
from sync_server.db import sync as sync_db
from sync_server.services import audit as audit_service
from sync_server.services.context import Actor


@dataclass(frozen=True)
class Pair:
    a: Patient
    b: Patient
    reason: str
    detected_at: Any


async def open_pairs(conn: asyncpg.Connection, actor: Actor, *, limit: int) -> list[Pair]:
    pairs = []
    for row in await duplicates_db.open_pairs(conn, actor.clinic_id, limit):
        a = await patients_db.get(conn, actor.clinic_id, row["patient_a"])
        b = await patients_db.get(conn, actor.clinic_id, row["patient_b"])
        if a is not None and b is not None:
            pairs.append(Pair(Patient.model_validate(a), Patient.model_validate(b), row["reason"], row["detected_at"]))
    return pairs


async def _write(
    conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, fields: dict[str, Any], stamp: str
) -> asyncpg.Record:
    """Merge stamped field values into a stored patient (per-field LWW, like sync) and store the result."""
    current, stamps = patients_db.state_of(row)
    merged = merge_patient(current, stamps, fields, dict.fromkeys(fields, stamp))
    typed = PatientFields.model_validate({k: v for k, v in merged.fields.items() if k != DELETED_FIELD})
    await patients_db.write_synced(
        conn,
        patient_id=row["id"],
        clinic_id=actor.clinic_id,
        values={**typed.model_dump(), DELETED_FIELD: merged.fields.get(DELETED_FIELD, False)},
        field_hlcs=merged.field_hlcs,
        hlc=max(merged.field_hlcs.values()),
        exists=True,
    )
    locked = await patients_db.lock_for_sync(conn, row["id"])
    assert locked is not None
    return locked


async def merge(
    conn: asyncpg.Connection, actor: Actor, *, keep_id: uuid.UUID, merge_id: uuid.UUID, clock: HLC
) -> Patient:
    """Merge ``merge_id`` into ``keep_id`` (see the module docstring). Returns the kept patient."""
    if keep_id == merge_id:
        raise errors.ConflictProblem("A patient cannot be merged into itself")
    # Lock in id order so two merges of the same pair cannot deadlock.
    rows = {pid: await patients_db.lock_for_sync(conn, pid) for pid in sorted((keep_id, merge_id))}
    keep, dup = rows[keep_id], rows[merge_id]
    for row in (keep, dup):
        if row is None or row["clinic_id"] != actor.clinic_id or row["deleted"]:
            raise errors.NotFound("Both patients must be live patients of your clinic")
    assert keep is not None and dup is not None
    dup_fields, _ = patients_db.state_of(dup)
    keep_fields, _ = patients_db.state_of(keep)
    copied = {k: v for k, v in dup_fields.items() if v is not None and keep_fields.get(k) is None}
    stamp = encode(clock.now())
    if copied:
        keep = await _write(conn, actor, keep, copied, stamp)
    await _write(conn, actor, dup, {DELETED_FIELD: True}, stamp)
    await duplicates_db.mark_merged(conn, merge_id, keep_id)
    await duplicates_db.resolve(conn, actor.clinic_id, keep_id, merge_id, resolution="merged", by=actor.user_id)
    await audit_service.record(
        conn,
        actor,
        action="patient.merge",
        entity_type="patient",
        entity_id=str(keep_id),
        details={"merged": str(merge_id), "fields_copied": sorted(copied)},
    )
    await sync_db.bump_feed(conn, actor.clinic_id, "patient", sorted((keep_id, merge_id)), batch_id=None)
    result = await patients_db.get(conn, actor.clinic_id, keep_id)
    assert result is not None
    return Patient.model_validate(result)


async def dismiss(conn: asyncpg.Connection, actor: Actor, a: uuid.UUID, b: uuid.UUID) -> None:
    """Record that two look-alike patients are different people."""
    if not await duplicates_db.resolve(conn, actor.clinic_id, a, b, resolution="not_duplicate", by=actor.user_id):
        raise errors.NotFound("No open duplicate pair with these patients in your clinic")
    await audit_service.record(
        conn,
        actor,
        action="patient.not_duplicate",
        entity_type="patient",
        entity_id=str(min(a, b)),
        details={"other": str(max(a, b))},
    )
