"""Patient routes (the seed's paths); every one is scoped to the caller's clinic."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from shared.records.patient import Patient, PatientCreate, PatientUpdate
from sync_server import errors
from sync_server.api.deps import ClinicStaff, Db, State
from sync_server.api.schemas import PatientPage
from sync_server.services import patients as patients_service

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])
_common = errors.responses(errors.Unauthenticated, errors.Forbidden)


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
