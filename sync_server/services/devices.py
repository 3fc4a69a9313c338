"""Enrolling clinic PCs: a device id and a long-lived device token that buys short access tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from shared.ids import uuid7
from sync_server import errors
from sync_server.db import sync as sync_db
from sync_server.security import tokens
from sync_server.services import audit as audit_service
from sync_server.services.context import Actor
from sync_server.settings import Settings

DEVICE_ROLE = "device"


@dataclass(frozen=True)
class Enrolled:
    device_id: uuid.UUID
    device_token: str
    clinic_id: uuid.UUID


async def enroll(conn: asyncpg.Connection, actor: Actor, *, name: str, device_id: uuid.UUID | None) -> Enrolled:
    """Register a PC for the actor's clinic; the token is shown once and stored only as a hash."""
    device_id = device_id or uuid7()
    token = "dt_" + tokens.new_refresh_token()[3:]
    inserted = await sync_db.insert_device(
        conn,
        device_id=device_id,
        clinic_id=actor.clinic_id,
        name=name,
        enrolled_by=actor.user_id,
        token_hash=tokens.refresh_hash(token),
    )
    if not inserted:
        raise errors.ConflictProblem("This device id is enrolled for another clinic")
    await audit_service.record(
        conn, actor, action="device.enroll", entity_type="device", entity_id=str(device_id), details={"name": name}
    )
    return Enrolled(device_id, token, actor.clinic_id)


async def access_token(conn: asyncpg.Connection, settings: Settings, *, device_id: uuid.UUID, token: str) -> str:
    row = await sync_db.device(conn, device_id)
    if row is None or row["revoked_at"] is not None or row["token_hash"] != tokens.refresh_hash(token):
        raise errors.DeviceInvalid()
    await sync_db.touch_device(conn, device_id)
    return tokens.issue_access(
        tokens.AccessClaims(device_id, device_id, row["clinic_id"], DEVICE_ROLE, None),
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        ttl_s=settings.access_token_ttl_s,
    )


async def live_device_clinic(pool: asyncpg.Pool, device_id: uuid.UUID) -> uuid.UUID | None:
    """The device's clinic while it is enrolled and not revoked; checked on every request."""
    async with pool.acquire() as conn:
        row = await sync_db.device(conn, device_id)
    if row is None or row["revoked_at"] is not None:
        return None
    return row["clinic_id"]  # type: ignore[no-any-return]


async def revoke(conn: asyncpg.Connection, actor: Actor, device_id: uuid.UUID) -> None:
    if not await sync_db.revoke_device(conn, actor.clinic_id, device_id):
        raise errors.NotFound("No enrolled device with this id in your clinic")
    await audit_service.record(conn, actor, action="device.revoke", entity_type="device", entity_id=str(device_id))
