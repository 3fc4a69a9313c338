"""Clinical views across record kinds: the patient's integrated health timeline."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from sync_server import errors
from sync_server.api.deps import ClinicStaff, Db
from sync_server.services import health_graph as service

router = APIRouter(prefix="/api/v1/clinical", tags=["clinical"])
_Unprocessable = {
    422: {
        "description": "Bad parameters (e.g. from after to, a cursor this server did not give out)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


@router.get(
    "/health-graph/{patient_id}",
    response_model=service.HealthGraph,
    response_model_exclude_none=False,
    summary="A patient's health timeline: encounters, diagnoses, vitals, prescriptions, wearable daily averages",
    description=(
        "One time-ordered timeline (oldest first) of a patient of your clinic. Encounters carry type, chief "
        "complaint and status; diagnoses and vitals come from each encounter's SOAP note (assessment, "
        "objective.vitals); prescriptions carry their allopathic lines and, with include_ayush, their AYUSH lines; "
        "with include_wearables, one entry per clinic-local day (Asia/Kolkata) with the daily average, minimum, "
        "maximum and count of each device metric. `from`/`to` are clinic-local dates, both included. Paged: "
        "pass `next_cursor` back as `cursor`. Another clinic's patient answers 404 like an unknown one."
    ),
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden, errors.NotFound) | _Unprocessable,
)
async def health_graph(
    patient_id: uuid.UUID,
    actor: ClinicStaff,
    db: Db,
    include_wearables: bool = False,
    include_ayush: bool = False,
    from_: Annotated[date | None, Query(alias="from", description="First clinic-local date (included)")] = None,
    to: Annotated[date | None, Query(description="Last clinic-local date (included)")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT, description="Entries per page")] = 100,
    cursor: Annotated[str | None, Query(max_length=400, description="`next_cursor` of the previous page")] = None,
) -> service.HealthGraph:
    return await service.health_graph(
        db,
        actor,
        patient_id,
        include_wearables=include_wearables,
        include_ayush=include_ayush,
        first=from_,
        last=to,
        limit=limit,
        cursor=cursor,
    )
