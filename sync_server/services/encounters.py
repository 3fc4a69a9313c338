"""Encounters: create, read, change while draft, complete, and add addenda; clinic-scoped and audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.clock import HLC, encode
from shared.ids import uuid7
from shared.records.encounter import (
    Addendum,
    AddendumCreate,
    Encounter,
    EncounterCreate,
    EncounterUpdate,
    Vitals,
)
from sync_server import errors
from sync_server.db import encounters as encounters_db
from sync_server.services import audit as audit_service
from sync_server.services.context import Actor

EncounterCompleted = errors.EncounterCompleted  # the problem type lives with the others; kept here for callers


async def _audit(
    conn: asyncpg.Connection, actor: Actor, action: str, entity_id: str, details: dict[str, Any] | None = None
) -> None:
    await audit_service.record(
        conn, actor, action=action, entity_type="encounter", entity_id=entity_id, details=details
    )


def _not_found() -> errors.NotFound:
    # Same answer for "no such encounter" and "another clinic's encounter": nothing leaks across clinics.
    return errors.NotFound("No encounter with this id in your clinic")


async def _with_addenda(conn: asyncpg.Connection, clinic_id: uuid.UUID, row: dict[str, Any]) -> Encounter:
    addenda = await encounters_db.addenda(conn, clinic_id, row["id"])
    return Encounter.model_validate({**row, "addenda": addenda})


async def create(conn: asyncpg.Connection, actor: Actor, body: EncounterCreate, clock: HLC) -> Encounter:
    if not await encounters_db.patient_exists(conn, actor.clinic_id, body.patient_id):
        raise errors.NotFound("No patient with this id in your clinic")
    encounter_id = body.id or uuid7()
    row = await encounters_db.insert(
        conn,
        encounter_id=encounter_id,
        clinic_id=actor.clinic_id,
        doctor_id=actor.user_id,
        fields=body.model_dump(mode="json", exclude={"id"}) | {"start_time": body.start_time},
        hlc=encode(clock.now()),
    )
    if row is None:
        raise errors.ConflictProblem("A record with this id already exists", code_hint="encounter.id_taken")
    await _audit(conn, actor, "encounter.create", str(encounter_id), {"patient_id": str(body.patient_id)})
    return Encounter.model_validate(row)


async def get(conn: asyncpg.Connection, actor: Actor, encounter_id: uuid.UUID) -> Encounter:
    row = await encounters_db.get(conn, actor.clinic_id, encounter_id)
    if row is None:
        raise _not_found()
    await _audit(conn, actor, "encounter.read", str(encounter_id))
    return await _with_addenda(conn, actor.clinic_id, row)


async def _draft_for_update(conn: asyncpg.Connection, actor: Actor, encounter_id: uuid.UUID) -> dict[str, Any]:
    row = await encounters_db.get(conn, actor.clinic_id, encounter_id, for_update=True)
    if row is None:
        raise _not_found()
    if row["status"] != "draft":
        raise EncounterCompleted(f"Encounter {encounter_id} was completed at {row['completed_at'].isoformat()}")
    return row


async def update(
    conn: asyncpg.Connection, actor: Actor, encounter_id: uuid.UUID, body: EncounterUpdate, clock: HLC
) -> Encounter:
    row = await _draft_for_update(conn, actor, encounter_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    if "start_time" in changes:
        changes["start_time"] = body.start_time
    if changes:
        row = await encounters_db.update(conn, actor.clinic_id, encounter_id, changes, encode(clock.now()))
    await _audit(conn, actor, "encounter.update", str(encounter_id), {"fields": sorted(changes)})
    return await _with_addenda(conn, actor.clinic_id, row)


async def record_vitals(
    conn: asyncpg.Connection, actor: Actor, encounter_id: uuid.UUID, vitals: Vitals, clock: HLC
) -> Encounter:
    """Set the draft note's ``objective.vitals`` (nurses record vitals; only this section is theirs to change).

    The rest of the SOAP note is left exactly as it is; a completed encounter refuses (409), as for any change.
    """
    row = await _draft_for_update(conn, actor, encounter_id)
    note: dict[str, Any] = dict(row["soap_note"] or {})
    objective = dict(note.get("objective") or {})
    objective["vitals"] = vitals.model_dump(mode="json", exclude_none=True)
    note["objective"] = objective
    row = await encounters_db.update(conn, actor.clinic_id, encounter_id, {"soap_note": note}, encode(clock.now()))
    await _audit(conn, actor, "encounter.vitals", str(encounter_id), {"fields": sorted(objective["vitals"])})
    return await _with_addenda(conn, actor.clinic_id, row)


async def complete(conn: asyncpg.Connection, actor: Actor, encounter_id: uuid.UUID, clock: HLC) -> Encounter:
    await _draft_for_update(conn, actor, encounter_id)
    row = await encounters_db.complete(conn, actor.clinic_id, encounter_id, datetime.now(UTC), encode(clock.now()))
    await _audit(conn, actor, "encounter.complete", str(encounter_id))
    return await _with_addenda(conn, actor.clinic_id, row)


async def add_addendum(
    conn: asyncpg.Connection, actor: Actor, encounter_id: uuid.UUID, body: AddendumCreate
) -> Addendum:
    row = await encounters_db.get(conn, actor.clinic_id, encounter_id)
    if row is None:
        raise _not_found()
    if row["status"] != "completed":
        raise errors.ConflictProblem(
            "The encounter is still a draft: change it directly (addenda are for completed encounters)",
            code_hint="encounter.not_completed",
        )
    addendum_id = uuid7()
    added = await encounters_db.insert_addendum(
        conn,
        addendum_id=addendum_id,
        encounter_id=encounter_id,
        clinic_id=actor.clinic_id,
        author_id=actor.user_id,
        text=body.text,
        soap_note=body.soap_note.model_dump(mode="json") if body.soap_note else None,
    )
    await _audit(conn, actor, "encounter.addendum", str(encounter_id), {"addendum_id": str(addendum_id)})
    return Addendum.model_validate(added)
