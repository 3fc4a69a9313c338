"""Encounter routes: a SOAP note that is a draft until completed, then immutable with addenda."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status

from shared.records.encounter import Addendum, AddendumCreate, Encounter, EncounterCreate, EncounterUpdate, Vitals
from shared.records.staff import Role
from sync_server import errors
from sync_server.api.deps import ClinicStaff, Db, State, require_roles
from sync_server.services import encounters as encounters_service
from sync_server.services.context import Actor

router = APIRouter(prefix="/api/v1/encounters", tags=["encounters"])
_common = errors.responses(errors.Unauthenticated, errors.Forbidden, errors.NotFound)
# The encounter is the doctor's clinical record: only doctors write it (nurses' vitals entry is not built yet).
Doctor = Annotated[Actor, require_roles(Role.DOCTOR)]
Clinician = Annotated[Actor, require_roles(Role.DOCTOR, Role.NURSE)]


@router.post(
    "",
    response_model=Encounter,
    status_code=status.HTTP_201_CREATED,
    summary="Start an encounter (draft) for a patient of your clinic",
    responses=_common | errors.responses(errors.ConflictProblem),
)
async def create_encounter(body: EncounterCreate, actor: Doctor, db: Db, st: State) -> Encounter:
    return await encounters_service.create(db, actor, body, st.clock)


@router.get(
    "/{encounter_id}", response_model=Encounter, summary="Read one encounter with its addenda", responses=_common
)
async def get_encounter(encounter_id: uuid.UUID, actor: ClinicStaff, db: Db) -> Encounter:
    return await encounters_service.get(db, actor, encounter_id)


@router.patch(
    "/{encounter_id}",
    response_model=Encounter,
    summary="Change a draft encounter (a completed one answers 409 encounter.completed_immutable)",
    responses=_common | errors.responses(encounters_service.EncounterCompleted),
)
async def update_encounter(
    encounter_id: uuid.UUID, body: EncounterUpdate, actor: Doctor, db: Db, st: State
) -> Encounter:
    return await encounters_service.update(db, actor, encounter_id, body, st.clock)


@router.put(
    "/{encounter_id}/vitals",
    response_model=Encounter,
    summary="Record the vitals of a draft encounter (doctors and nurses); the rest of the note is unchanged",
    responses=_common | errors.responses(encounters_service.EncounterCompleted),
)
async def record_vitals(encounter_id: uuid.UUID, body: Vitals, actor: Clinician, db: Db, st: State) -> Encounter:
    return await encounters_service.record_vitals(db, actor, encounter_id, body, st.clock)


@router.post(
    "/{encounter_id}/complete",
    response_model=Encounter,
    summary="Complete the encounter; from now on it only takes addenda",
    responses=_common | errors.responses(encounters_service.EncounterCompleted),
)
async def complete_encounter(encounter_id: uuid.UUID, actor: Doctor, db: Db, st: State) -> Encounter:
    return await encounters_service.complete(db, actor, encounter_id, st.clock)


@router.post(
    "/{encounter_id}/addenda",
    response_model=Addendum,
    status_code=status.HTTP_201_CREATED,
    summary="Add an addendum to a completed encounter (append-only)",
    responses=_common | errors.responses(errors.ConflictProblem),
)
async def add_addendum(encounter_id: uuid.UUID, body: AddendumCreate, actor: Doctor, db: Db) -> Addendum:
    return await encounters_service.add_addendum(db, actor, encounter_id, body)
