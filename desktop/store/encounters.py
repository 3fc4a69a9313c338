"""Encounters and their addenda in the local store (SQL only; the rules are in `desktop.services.encounters`).

Rows come back as the shared record models (`shared.records.encounter.Encounter` / `Addendum`), so a
screen shows what the server would send. A completed encounter is refused by triggers as well as by the
service (revision 2026_11_25_0002); the repository does not check it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from desktop.errors import NotFound
from desktop.store.tables import encounter_addenda, encounters
from shared.records.encounter import Addendum, Encounter, SoapNote


def _addendum(row: sa.Row[Any]) -> Addendum:
    return Addendum(
        id=row.id,
        encounter_id=row.encounter_id,
        author_id=row.author_id,
        text=row.text,
        soap_note=SoapNote.model_validate(row.soap_note) if row.soap_note is not None else None,
        created_at=row.created_at,
    )


def _encounter(row: sa.Row[Any], addenda: list[Addendum]) -> Encounter:
    return Encounter(
        id=row.id,
        clinic_id=row.clinic_id,
        patient_id=row.patient_id,
        doctor_id=row.doctor_id,
        encounter_type=row.encounter_type,
        start_time=row.start_time,
        chief_complaint=row.chief_complaint,
        soap_note=SoapNote.model_validate(row.soap_note) if row.soap_note is not None else None,
        status=row.status,
        completed_at=row.completed_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        addenda=addenda,
    )


class EncounterRepository:
    """Encounter rows on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def insert(self, values: dict[str, Any]) -> None:
        """Insert a new encounter row (every column but the defaults)."""
        self._conn.execute(encounters.insert().values(**values))

    def update(self, encounter_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Change columns of an encounter and bump its version."""
        self._conn.execute(
            encounters.update()
            .where(encounters.c.id == encounter_id)
            .values(**values, version=encounters.c.version + 1)
        )

    def find(self, encounter_id: uuid.UUID) -> Encounter | None:
        """The encounter with its addenda (oldest first), or None."""
        row = self._conn.execute(sa.select(encounters).where(encounters.c.id == encounter_id)).one_or_none()
        return None if row is None else _encounter(row, self.addenda(encounter_id))

    def get(self, encounter_id: uuid.UUID) -> Encounter:
        """The encounter; `NotFound` when there is none."""
        found = self.find(encounter_id)
        if found is None:
            raise NotFound(f"Encounter {encounter_id} is not on this computer.")
        return found

    def for_patient(self, patient_id: uuid.UUID) -> list[Encounter]:
        """The patient's encounters, newest first (without addenda, for lists)."""
        rows = self._conn.execute(
            sa.select(encounters)
            .where(encounters.c.patient_id == patient_id)
            .order_by(encounters.c.start_time.desc(), encounters.c.id.desc())
        ).all()
        return [_encounter(row, []) for row in rows]

    def add_addendum(
        self, *, addendum_id: uuid.UUID, encounter_id: uuid.UUID, author_id: uuid.UUID, text: str,
        soap_note: dict[str, Any] | None, created_at: datetime,
    ) -> None:  # fmt: skip
        """Append an addendum (the trigger refuses one on an encounter that is not completed)."""
        self._conn.execute(
            encounter_addenda.insert().values(
                id=addendum_id,
                encounter_id=encounter_id,
                author_id=author_id,
                text=text,
                soap_note=soap_note,
                created_at=created_at,
            )
        )

    def addenda(self, encounter_id: uuid.UUID) -> list[Addendum]:
        """The encounter's addenda, oldest first."""
        rows = self._conn.execute(
            sa.select(encounter_addenda)
            .where(encounter_addenda.c.encounter_id == encounter_id)
            .order_by(encounter_addenda.c.created_at, encounter_addenda.c.id)
        ).all()
        return [_addendum(row) for row in rows]
