"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sync_server.api.deps import State
from sync_server.api.problems import problem_response
from sync_server.api.schemas import Health, Ready
from sync_server.services import health as health_service
from sync_server.services import readings as readings_service

router = APIRouter(tags=["health"])


class ReadyWithTimeSeries(Ready):
    time_series: Literal["timescaledb", "native_partitions"] | None = None
    """How wearable readings are stored (chosen by the wearables migration); None if unknown."""


@router.get("/health", response_model=Health, summary="Liveness: the process answers (no database call)")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=ReadyWithTimeSeries,
    summary="Readiness: database reachable and schema at the head revision",
    responses={503: {"description": "Not ready, with the reason", "content": {"application/problem+json": {}}}},
)
async def ready(st: State) -> Ready | JSONResponse:
    reason, revision = await health_service.readiness(st.pool, st.schema_head)
    if reason:
        return problem_response(503, "not_ready", "Not ready", reason)
    mode = await readings_service.time_series_mode(st.pool)
    return ReadyWithTimeSeries(
        status="ready",
        database="reachable",
        schema_revision=revision or "",
        time_series=mode if mode in ("timescaledb", "native_partitions") else None,
    )
