"""Status events of signed prescriptions in the local store (SQL only; the rules are in `services.rx_status`)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from desktop.store.tables import prescription_status_events as events

State = Literal["pending", "stale", "synced", "refused"]
LIVE: tuple[State, ...] = ("pending", "synced")
"""States that hold their seq: the server holds the event, or it is on its way there."""


@dataclass(frozen=True)
class StoredEvent:
    id: uuid.UUID
    prescription_id: uuid.UUID
    seq: int
    status: str
    reason: str
    at: datetime
    signer_id: uuid.UUID | None
    signer_kid: str
    cose: bytes
    state: State
    refusal: str | None
    created_at: datetime
    updated_at: datetime


class StatusEventRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def find(self, event_id: uuid.UUID) -> StoredEvent | None:
        row = self._conn.execute(sa.select(events).where(events.c.id == event_id)).first()
        return StoredEvent(**row._mapping) if row is not None else None

    def for_prescription(self, prescription_id: uuid.UUID) -> list[StoredEvent]:
        """Every event of the prescription, by seq then time written."""
        return self.for_prescriptions([prescription_id]).get(prescription_id, [])

    def for_prescriptions(self, prescription_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[StoredEvent]]:
        ids = list(prescription_ids)
        out: dict[uuid.UUID, list[StoredEvent]] = {}
        if not ids:
            return out
        rows = self._conn.execute(
            sa.select(events)
            .where(events.c.prescription_id.in_(ids))
            .order_by(events.c.prescription_id, events.c.seq, events.c.created_at)
        )
        for row in rows:
            event = StoredEvent(**row._mapping)
            out.setdefault(event.prescription_id, []).append(event)
        return out

    def in_state(self, state: State) -> list[StoredEvent]:
        rows = self._conn.execute(sa.select(events).where(events.c.state == state).order_by(events.c.created_at))
        return [StoredEvent(**row._mapping) for row in rows]

    def add(self, event: StoredEvent) -> None:
        self._conn.execute(sa.insert(events).values(**event.__dict__))

    def set_state(self, event_id: uuid.UUID, state: State, *, refusal: str | None, now: datetime) -> None:
        self._conn.execute(
            sa.update(events)
            .where(events.c.id == event_id, events.c.state != "synced")
            .values(state=state, refusal=refusal, updated_at=now)
        )

    def resign(self, event_id: uuid.UUID, *, seq: int, at: datetime, kid: str, cose: bytes, now: datetime) -> None:
        """The same intent signed again with another seq: on its way to the server again."""
        self._conn.execute(
            sa.update(events)
            .where(events.c.id == event_id, events.c.state == "stale")
            .values(seq=seq, at=at, signer_kid=kid, cose=cose, state="pending", refusal=None, updated_at=now)
        )

    def make_way(self, prescription_id: uuid.UUID, seq: int, *, keep: uuid.UUID, now: datetime, why: str) -> int:
        """A pulled event takes ``seq``: this PC's pending event of that seq (another id) becomes stale."""
        result = self._conn.execute(
            sa.update(events)
            .where(
                events.c.prescription_id == prescription_id,
                events.c.seq == seq,
                events.c.id != keep,
                events.c.state == "pending",
            )
            .values(state="stale", refusal=why, updated_at=now)
        )
        return int(result.rowcount)

    def adopt(self, event_id: uuid.UUID, *, seq: int, at: datetime, kid: str, cose: bytes, now: datetime) -> None:
        """This PC's event as the server holds it (pulled): its signed copy replaces the local one, synced."""
        self._conn.execute(
            sa.update(events)
            .where(events.c.id == event_id, events.c.state != "synced")
            .values(seq=seq, at=at, signer_kid=kid, cose=cose, state="synced", refusal=None, updated_at=now)
        )


def read_known_events(database: Path, prescription_id: uuid.UUID) -> list[StoredEvent] | None:
    """The prescription's status events in a store file, read without opening the store for work.

    For `integmed rx verify`, which may run beside the app (WAL lets it read meanwhile) or on a PC with no
    store: the file is opened read-only, never created, migrated or written.

    Returns:
        The events, by seq (every state; the caller decides which count), or None when there is no store
        file or it has no status events yet (a store older than that table).
    """
    if not database.is_file():
        return None

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=5)

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            has_table = conn.execute(
                sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
                {"name": events.name},
            ).first()
            if has_table is None:
                return None
            return StatusEventRepository(conn).for_prescription(prescription_id)
    finally:
        engine.dispose()
