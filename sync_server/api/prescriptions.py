"""Prescribing routes (the seed's paths): interaction checks, shorthand expansion."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from shared.records.prescription import Draft, DraftCreate
from shared.records.staff import Role
from shared.rx.interactions import CheckRequest, CheckResult
from shared.rx.shorthand import ExpandedLine
from sync_server import errors
from sync_server.api.deps import ClinicStaff, Db, State, require_roles
from sync_server.services import prescribing
from sync_server.services import prescriptions as prescriptions_service
from sync_server.services.context import Actor

router = APIRouter(prefix="/api/v1/prescriptions", tags=["prescriptions"])


@router.post(
    "/check-interactions",
    response_model=CheckResult,
    summary="Drug–drug, drug–herb and drug/herb–condition findings, duplicate therapy, safety score",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden),
)
async def check_interactions(body: CheckRequest, actor: ClinicStaff) -> CheckResult:
    return prescribing.check_interactions(body)


class ShorthandBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"shorthand": "Metf 1000 bd 30d"}]})

    shorthand: str = Field(max_length=2000, description="One prescription line as the doctor types it")


@router.post(
    "/expand-shorthand",
    response_model=ExpandedLine,
    summary="Expand one shorthand line; what cannot be read is listed in `unresolved`, never guessed",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden),
)
async def expand_shorthand(body: ShorthandBody, actor: ClinicStaff) -> ExpandedLine:
    return prescribing.expand_shorthand(body.shorthand)


# Only doctors prescribe; what each doctor may prescribe is then the prescribing policy's decision.
Prescriber = Annotated[Actor, require_roles(Role.DOCTOR)]


@router.post(
    "/draft",
    response_model=Draft,
    status_code=status.HTTP_201_CREATED,
    summary="Save a prescription draft for an encounter; every line is resolved and re-checked against policy",
    responses=errors.responses(
        errors.Unauthenticated,
        errors.Forbidden,
        errors.NotFound,
        errors.ConflictProblem,
        errors.PrescribingRefused,
        errors.InteractionContraindicated,
        errors.OverrideRequired,
    ),
)
async def create_draft(body: DraftCreate, actor: Prescriber, db: Db, st: State) -> Draft:
    try:
        return await prescriptions_service.create_draft(db, actor, body, st.clock)
    except (errors.PrescribingRefused, errors.InteractionContraindicated) as refusal:
        await prescriptions_service.record_refusal(st.pool, actor, body, refusal)
        raise


@router.get(
    "/{prescription_id}",
    response_model=Draft,
    summary="Read one prescription",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden, errors.NotFound),
)
async def get_prescription(prescription_id: uuid.UUID, actor: ClinicStaff, db: Db) -> Draft:
    return await prescriptions_service.get(db, actor, prescription_id)
