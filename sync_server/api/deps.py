"""Request dependencies: the per-request transaction (`Db`), the caller (`CurrentUser`) and role checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.clock import HLC
from shared.records.staff import Role
from sync_server import errors
from sync_server.hpr.client import HprClient
from sync_server.security import tokens
from sync_server.services import auth as auth_service
from sync_server.services import devices as devices_service
from sync_server.services.context import Actor, RequestMeta
from sync_server.settings import Settings


@dataclass
class AppState:
    """Everything the lifespan builds; routes reach it through dependencies, never through globals."""

    settings: Settings
    pool: asyncpg.Pool
    http: httpx.AsyncClient
    hpr: HprClient
    schema_head: str
    clock: HLC


def state(request: Request) -> AppState:
    return request.app.state.integmed  # type: ignore[no-any-return]


State = Annotated[AppState, Depends(state)]


async def _db(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """One connection and one transaction per request: commit on success, roll back on any error."""
    pool = state(request).pool
    async with pool.acquire() as conn, conn.transaction():
        yield conn


# scope="function": commit (or roll back) before the response is sent, never after it; otherwise a client
# could be told "201 Created" for a write that is not yet visible, or that then fails to commit.
Db = Annotated[asyncpg.Connection, Depends(_db, scope="function")]


def request_meta(request: Request) -> RequestMeta:
    ip = request.client.host if request.client else None
    if state(request).settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            ip = forwarded.split(",")[0].strip()
    ua = request.headers.get("user-agent")
    return RequestMeta(client_ip=ip, user_agent=ua[:300] if ua else None)


Meta = Annotated[RequestMeta, Depends(request_meta)]
_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/doctor/verify")


def _claims(request: Request, creds: HTTPAuthorizationCredentials | None) -> tokens.AccessClaims:
    st = state(request)
    if creds is None or creds.scheme.lower() != "bearer":
        raise errors.Unauthenticated(
            "Send the access token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        return tokens.decode_access(
            creds.credentials, secret=st.settings.jwt_secret.get_secret_value(), issuer=st.settings.jwt_issuer
        )
    except tokens.InvalidToken as exc:
        raise errors.Unauthenticated(str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc


async def current_actor(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    st = state(request)
    claims = _claims(request, creds)
    # A logged-out session, a deactivated user, a changed role or a revoked PC ends access at once, not at
    # token expiry.
    if claims.role == devices_service.DEVICE_ROLE:
        live = await devices_service.live_device_clinic(st.pool, claims.user_id) == claims.clinic_id
        role: str | None = devices_service.DEVICE_ROLE if live else None
    else:
        role = await auth_service.live_session_role(st.pool, claims.session_id, claims.clinic_id)
    if role is None:
        raise errors.Unauthenticated(
            "This sign-in has ended: sign in again",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return Actor(claims.user_id, claims.session_id, claims.clinic_id, role, claims.hpr_id, request_meta(request))


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Actor]]:
    allowed = {r.value for r in roles}

    async def _check(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in allowed:
            raise errors.Forbidden(f"Your role ({actor.role}) may not do this")
        return actor

    return _check


def require_roles(*roles: Role) -> Any:
    """A dependency marker (for ``Annotated[Actor, require_roles(...)]``) allowing only these roles."""
    return Depends(require(*roles))


async def _device(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if actor.role != devices_service.DEVICE_ROLE:
        raise errors.Forbidden("Sync needs an enrolled PC's token (POST /api/v1/auth/device/token)")
    return actor


async def _device_to_check(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    """A device from its access token alone: the route checks that the PC is still enrolled in its clinic in
    its own first statement (the pull does, in the page read: `services.sync.pull`), saving a round trip.
    Any other token is answered as `CurrentDevice` answers it (401 for an ended session, else 403)."""
    claims = _claims(request, creds)
    if claims.role != devices_service.DEVICE_ROLE:
        return await _device(await current_actor(request, creds))
    role = devices_service.DEVICE_ROLE
    return Actor(claims.user_id, claims.session_id, claims.clinic_id, role, claims.hpr_id, request_meta(request))


CurrentUser = Annotated[Actor, Depends(current_actor)]
CurrentDevice = Annotated[Actor, Depends(_device)]
DeviceToCheck = Annotated[Actor, Depends(_device_to_check)]
"""A device's token, its enrolment not yet checked: the route must check it (see `_device_to_check`)."""
ClinicStaff = Annotated[Actor, Depends(require(Role.DOCTOR, Role.NURSE, Role.FRONT_DESK, Role.CLINIC_ADMIN))]
ClinicId = uuid.UUID
