"""Patient routes (the seed's paths); every one is scoped to the caller's clinic."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from shared.records.patient import Patient, PatientCreate, PatientUpdate
from shared.records.staff import Role
from sync_server import errors
from sync_server.api.deps import ClinicStaff, Db, State, require_roles
from sync_server.api.schemas import PatientPage
from sync_server.services import duplicates as duplicates_service
from sync_server.services import patients as patients_service
from sync_server.services.context import Actor

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])
_common = errors.responses(errors.Unauthenticated, errors.Forbidden)
# Merging changes two records for good: doctors and the clinic admin decide, not the front desk.
MergeStaff = Annotated[Actor, require_roles(Role.DOCTOR, Role.CLINIC_ADMIN)]


@router.post(
    "",
    response_model=Patient,
    status_code=status.HTTP_201_CREATED,
    summary="Register a patient",
    responses=_common | errors.responses(errors.DuplicatePatient),
)
async def create_patient(body: PatientCreate, actor: ClinicStaff, db: Db, st: State) -> Patient:
    return await patients_service.create(db, actor, body, st.clock)


@router.get(
    "",
    response_model=PatientPage,
    summary="Search patients by name, mobile, ABHA number or address",
    responses=_common,
)
async def search_patients(
    actor: ClinicStaff,
    db: Db,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Name (prefix or fuzzy), mobile, ABHA number or address"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PatientPage:
    page = await patients_service.search(db, actor, q=q, limit=limit, cursor=cursor)
    return PatientPage(items=page.items, next_cursor=page.next_cursor)


class DuplicatePair(BaseModel):
    a: Patient
    b: Patient
    reason: str = Field(description="abha_number, abha_address or mobile_name_year")
    detected_at: datetime


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merge_id: uuid.UUID = Field(description="The duplicate record to fold into the one in the path")


class DismissBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_a: uuid.UUID
    patient_b: uuid.UUID


@router.get(
    "/duplicates",
    response_model=list[DuplicatePair],
    summary="Possible duplicate registrations (e.g. the same person registered offline on two PCs)",
    responses=_common,
)
async def list_duplicates(
    actor: ClinicStaff, db: Db, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[DuplicatePair]:
    pairs = await duplicates_service.open_pairs(db, actor, limit=limit)
    return [DuplicatePair(a=p.a, b=p.b, reason=p.reason, detected_at=p.detected_at) for p in pairs]


@router.post(
    "/duplicates/dismiss",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Record that two look-alike patients are different people",
    responses=_common | errors.responses(errors.NotFound),
)
async def dismiss_duplicate(body: DismissBody, actor: MergeStaff, db: Db) -> None:
    await duplicates_service.dismiss(db, actor, body.patient_a, body.patient_b)


@router.post(
    "/{patient_id}/merge",
    response_model=Patient,
    summary="Merge a duplicate into this patient (audited; the duplicate becomes a tombstone)",
    responses=_common | errors.responses(errors.NotFound, errors.ConflictProblem),
)
async def merge_patient(patient_id: uuid.UUID, body: MergeBody, actor: MergeStaff, db: Db, st: State) -> Patient:
    return await duplicates_service.merge(db, actor, keep_id=patient_id, merge_id=body.merge_id, clock=st.clock)


@router.get(
    "/{patient_id}",
    response_model=Patient,
    summary="Read one patient",
    responses=_common | errors.responses(errors.NotFound),
)
async def get_patient(patient_id: uuid.UUID, actor: ClinicStaff, db: Db) -> Patient:
    return await patients_service.get(db, actor, patient_id)


@router.patch(
    "/{patient_id}",
    response_model=Patient,
    summary="Change some fields of a patient",
    responses=_common | errors.responses(errors.NotFound, errors.DuplicatePatient),
)
async def update_patient(patient_id: uuid.UUID, body: PatientUpdate, actor: ClinicStaff, db: Db, st: State) -> Patient:
    return await patients_service.update(db, actor, patient_id, body, st.clock)
