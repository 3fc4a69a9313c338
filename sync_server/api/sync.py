"""Sync routes: enrol a PC, device tokens, push a batch, pull the clinic's feed, patient field history."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from shared.records.staff import Role
from shared.sync.protocol import PullResponse, PushRequest, PushResponse
from sync_server import errors
from sync_server.api.deps import ClinicStaff, CurrentDevice, Db, DeviceToCheck, Meta, State, require_roles
from sync_server.services import devices as devices_service
from sync_server.services import sync as sync_service
from sync_server.services.context import Actor

router = APIRouter(prefix="/api/v1", tags=["sync"])


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Reception PC 1"}]})

    name: str = Field(min_length=1, max_length=100, description="A name clinic staff recognise the PC by")
    device_id: uuid.UUID | None = Field(None, description="The PC's own id when it made one (UUIDv7)")


class Enrolled(BaseModel):
    device_id: uuid.UUID
    device_token: str = Field(description="Keep in the OS keyring; exchange at /api/v1/auth/device/token")
    clinic_id: uuid.UUID


class DeviceTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: uuid.UUID
    device_token: str = Field(min_length=10, max_length=200)


class DeviceAccess(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class HistoryEntry(BaseModel):
    field: str
    value: Any
    hlc: str | None
    replaced_by_hlc: str | None
    conflict: bool = Field(description="True when this value lost a conflict (it came in older than the stored one)")
    source: str | None
    recorded_at: Any


EnrollStaff = Annotated[Actor, require_roles(Role.DOCTOR, Role.CLINIC_ADMIN)]


@router.post(
    "/devices",
    response_model=Enrolled,
    status_code=status.HTTP_201_CREATED,
    summary="Enrol this PC for the signed-in user's clinic (doctor or clinic admin)",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden, errors.ConflictProblem),
)
async def enroll_device(body: EnrollBody, actor: EnrollStaff, db: Db) -> Enrolled:
    done = await devices_service.enroll(db, actor, name=body.name, device_id=body.device_id)
    return Enrolled(device_id=done.device_id, device_token=done.device_token, clinic_id=done.clinic_id)


@router.delete(
    "/devices/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a PC (clinic admin)",
    responses=errors.responses(errors.NotFound, errors.Forbidden),
)
async def revoke_device(
    device_id: uuid.UUID, actor: Annotated[Actor, require_roles(Role.CLINIC_ADMIN)], db: Db
) -> None:
    await devices_service.revoke(db, actor, device_id)


@router.post(
    "/auth/device/token",
    response_model=DeviceAccess,
    summary="Exchange a device token for access",
    responses=errors.responses(errors.DeviceInvalid),
)
async def device_token(body: DeviceTokenBody, db: Db, st: State, meta: Meta) -> DeviceAccess:
    token = await devices_service.access_token(db, st.settings, device_id=body.device_id, token=body.device_token)
    return DeviceAccess(access_token=token, expires_in=st.settings.access_token_ttl_s)


@router.post(
    "/sync/push",
    response_model=PushResponse,
    summary="Push a batch of local changes (idempotent)",
    responses=errors.responses(
        errors.ClientOutdated, errors.ServerOutdated, errors.DeviceInvalid, errors.BatchDeviceMismatch
    ),
)
async def push(body: PushRequest, device: CurrentDevice, db: Db, st: State, request: Request) -> Response:
    signing = getattr(request.app.state, "signing", None)  # None without signing keys (signed records refused)
    answer = await sync_service.push(db, device, body, st.clock, signing)
    # Serialised straight from the model the service built and validated: returning the model would have FastAPI
    # dump it, validate the dump against response_model again and dump that (6 ms of 1000 results).
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get(
    "/sync/pull",
    response_model=PullResponse,
    summary="Changes for this PC's clinic after the cursor; optionally wait for the next one (long poll)",
    description=(
        "Without `wait` (or with 0) the page is answered at once. With `wait=<seconds>` (at most 25) and no"
        " change after the cursor, the request stays open until a commit bumps the clinic's feed (any API"
        " worker: PostgreSQL LISTEN/NOTIFY) and then answers the new page; at the deadline it answers an empty"
        " page with the same cursor. A server holding too many waiting pulls answers 503 `sync.waiters_full`"
        " with Retry-After. An older server ignores `wait` and answers at once. Headers: `X-IntegMed-Remaining`,"
        " the feed entries after the page; `X-IntegMed-Next-Cursor` (only when `has_more`), the page's"
        " `next_cursor`, so a client can ask for the next page before it has parsed this one."
    ),
    responses=errors.responses(
        errors.ClientOutdated, errors.ServerOutdated, errors.DeviceInvalid, sync_service.WaitersFull
    ),
)
async def pull(
    request: Request,
    device: DeviceToCheck,  # its enrolment is checked by the page read's own statement
    st: State,
    cursor: Annotated[str | None, Query(max_length=40, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    wait: Annotated[
        float, Query(ge=0, le=sync_service.MAX_WAIT_S, description="Seconds to wait for a change when none is there")
    ] = 0,
    x_integmed_protocol: Annotated[int | None, Header()] = None,
    x_integmed_schema: Annotated[int | None, Header()] = None,
) -> Response:
    if x_integmed_protocol is not None or x_integmed_schema is not None:
        sync_service.check_versions(schema_version=x_integmed_schema or 0, protocol_version=x_integmed_protocol or 0)
    listener = getattr(request.app.state, "feed_listener", None)

    async def gone() -> None:  # returns when the client hangs up (a GET has no body left to read)
        while (await request.receive())["type"] != "http.disconnect":
            pass

    page, remaining = await sync_service.pull_waiting(
        st.pool, listener, device, cursor=cursor, limit=limit, wait=wait, clock=st.clock, gone=gone
    )
    # The body is the page's `PullResponse` JSON, built chunk by chunk by the service (bounded memory).
    # Progress for a first sync: how much is left after this page (header, so the body stays the protocol's).
    headers = {"X-IntegMed-Remaining": str(remaining)}
    if page.has_more:  # lets the client ask for the next page while it still parses this one
        headers["X-IntegMed-Next-Cursor"] = page.next_cursor
    return Response(page.body, media_type="application/json", headers=headers)


@router.get(
    "/patients/{patient_id}/history",
    response_model=list[HistoryEntry],
    tags=["patients"],
    summary="Earlier and conflicting values of a patient's fields",
    responses=errors.responses(errors.NotFound),
)
async def patient_history(patient_id: uuid.UUID, actor: ClinicStaff, db: Db) -> list[HistoryEntry]:
    return [HistoryEntry.model_validate(h) for h in await sync_service.history(db, actor, patient_id)]
