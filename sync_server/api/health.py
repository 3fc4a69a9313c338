"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sync_server.api.deps import State
from sync_server.api.problems import problem_response
from sync_server.api.schemas import Health, Ready
from sync_server.services import health as health_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness: the process answers (no database call)")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness: database reachable and schema at the head revision",
    responses={503: {"description": "Not ready, with the reason", "content": {"application/problem+json": {}}}},
)
async def ready(st: State) -> Ready | JSONResponse:
    reason, revision = await health_service.readiness(st.pool, st.schema_head)
    if reason:
        return problem_response(503, "not_ready", "Not ready", reason)
    return Ready(status="ready", database="reachable", schema_revision=revision or "")
