"""Prescribing routes (the seed's paths): interaction checks, shorthand expansion."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from shared.rx.interactions import CheckRequest, CheckResult
from shared.rx.shorthand import ExpandedLine
from sync_server import errors
from sync_server.api.deps import ClinicStaff
from sync_server.services import prescribing

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
