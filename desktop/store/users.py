"""People who have signed in on this PC: their profile (from the server) and their offline-unlock PIN state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from desktop.store.tables import local_users


@dataclass(frozen=True)
class LocalUser:
    """A user known to this PC.

    Args:
        user_id: the server's user id.
        name: display name, e.g. "Dr. Ananya Sharma".
        role: doctor, nurse, front_desk or clinic_admin.
        clinic_id: the clinic the user signed in for.
        hpr_id: the HPR ID when the user is a registered professional.
        profile: the full profile the server answered at sign-in (qualification, council, registration no.).
        has_pin: whether an offline-unlock PIN is set.
        failed_attempts: consecutive wrong PINs.
        locked_until: when offline unlock may be tried again, if locked.
    """

    user_id: uuid.UUID
    name: str
    role: str
    clinic_id: uuid.UUID
    hpr_id: str | None
    profile: dict[str, Any]
    has_pin: bool
    failed_attempts: int
    locked_until: datetime | None


def _user(row: sa.Row[Any]) -> LocalUser:
    return LocalUser(
        user_id=row.user_id,
        name=row.name,
        role=row.role,
        clinic_id=row.clinic_id,
        hpr_id=row.hpr_id,
        profile=dict(row.profile),
        has_pin=row.pin_hash is not None,
        failed_attempts=row.failed_attempts,
        locked_until=row.locked_until,
    )


class LocalUserRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def upsert_profile(self, profile: dict[str, Any], *, now: datetime) -> LocalUser:
        """Store or refresh a user from the server's sign-in answer (keeps the PIN and lockout state)."""
        values = {
            "user_id": uuid.UUID(str(profile["id"])),
            "hpr_id": profile.get("hpr_id"),
            "name": profile["name"],
            "role": profile["role"],
            "clinic_id": uuid.UUID(str(profile["clinic"]["id"])),
            "profile": profile,
            "updated_at": now,
        }
        stmt = sqlite_insert(local_users).values(**values, failed_attempts=0, created_at=now)
        self._conn.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=values))
        return self.get(values["user_id"])

    def get(self, user_id: uuid.UUID) -> LocalUser:
        row = self._conn.execute(sa.select(local_users).where(local_users.c.user_id == user_id)).one()
        return _user(row)

    def find(self, user_id: uuid.UUID) -> LocalUser | None:
        row = self._conn.execute(sa.select(local_users).where(local_users.c.user_id == user_id)).one_or_none()
        return None if row is None else _user(row)

    def all(self) -> list[LocalUser]:
        rows = self._conn.execute(sa.select(local_users).order_by(local_users.c.name)).all()
        return [_user(r) for r in rows]

    def pin_hash(self, user_id: uuid.UUID) -> str | None:
        return self._conn.execute(  # type: ignore[no-any-return]
            sa.select(local_users.c.pin_hash).where(local_users.c.user_id == user_id)
        ).scalar_one_or_none()

    def set_pin_hash(self, user_id: uuid.UUID, pin_hash: str, *, now: datetime) -> None:
        self._conn.execute(
            local_users.update()
            .where(local_users.c.user_id == user_id)
            .values(pin_hash=pin_hash, failed_attempts=0, locked_until=None, updated_at=now)
        )

    def record_unlock_result(
        self, user_id: uuid.UUID, *, failed_attempts: int, locked_until: datetime | None, now: datetime
    ) -> None:
        self._conn.execute(
            local_users.update()
            .where(local_users.c.user_id == user_id)
            .values(failed_attempts=failed_attempts, locked_until=locked_until, updated_at=now)
        )
