"""Prescription drafts, audited alert overrides and qualification refusals in the local store (SQL only).

Overrides and refusals are audit rows: inserted, never updated or deleted (triggers refuse both).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from desktop.store.tables import prescriptions, rx_alert_overrides, rx_refusals


@dataclass(frozen=True)
class StoredPrescription:
    """A prescription row.

    Args:
        lines: the typed lines with their expansion: ``[{"text": …, "expanded": {…}}]``.
        medications / ayush_medications: the shared record lines (`shared.records.prescription`) as JSON.
        advisories: policy advisories (`PolicyNote` JSON) found when it was saved.
    """

    id: uuid.UUID
    encounter_id: uuid.UUID
    patient_id: uuid.UUID
    prescriber_id: uuid.UUID
    status: str
    lines: list[dict[str, Any]]
    medications: list[dict[str, Any]]
    ayush_medications: list[dict[str, Any]]
    advisories: list[dict[str, Any]]
    kb_version: str
    policy_version: str
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OverrideRecord:
    """One audited override of an interaction alert: who, when, which rule, why, and the lines involved."""

    id: uuid.UUID
    encounter_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    rule_id: str
    alert_key: str
    severity: str
    reason: str
    lines: list[dict[str, Any]]
    kb_version: str


@dataclass(frozen=True)
class RefusalRecord:
    """One attempt to save a medicine the prescribing policy refuses for this prescriber."""

    id: uuid.UUID
    encounter_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    rule_id: str
    medicine: str
    line_text: str
    reason: str
    source: str
    policy_version: str


class PrescriptionRepository:
    """Prescription rows on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def for_encounter(self, encounter_id: uuid.UUID) -> StoredPrescription | None:
        """The encounter's prescription, or None."""
        row = self._conn.execute(
            sa.select(prescriptions).where(prescriptions.c.encounter_id == encounter_id)
        ).one_or_none()
        return None if row is None else StoredPrescription(**row._asdict())

    def insert(self, values: dict[str, Any]) -> None:
        self._conn.execute(prescriptions.insert().values(**values))

    def update(self, prescription_id: uuid.UUID, values: dict[str, Any]) -> None:
        self._conn.execute(
            prescriptions.update()
            .where(prescriptions.c.id == prescription_id)
            .values(**values, version=prescriptions.c.version + 1)
        )

    def delete_draft(self, prescription_id: uuid.UUID) -> None:
        """Remove a draft whose every line was deleted (a final prescription is refused by a trigger)."""
        self._conn.execute(prescriptions.delete().where(prescriptions.c.id == prescription_id))

    # -- audit rows -------------------------------------------------------------------------------------

    def add_override(self, record: OverrideRecord) -> None:
        self._conn.execute(rx_alert_overrides.insert().values(**record.__dict__))

    def overrides(self, encounter_id: uuid.UUID) -> list[OverrideRecord]:
        """Overrides recorded for the encounter, oldest first."""
        rows = self._conn.execute(
            sa.select(rx_alert_overrides)
            .where(rx_alert_overrides.c.encounter_id == encounter_id)
            .order_by(rx_alert_overrides.c.created_at, rx_alert_overrides.c.id)
        ).all()
        return [OverrideRecord(**row._asdict()) for row in rows]

    def add_refusal(self, record: RefusalRecord) -> None:
        self._conn.execute(rx_refusals.insert().values(**record.__dict__))

    def refusals(self, encounter_id: uuid.UUID) -> list[RefusalRecord]:
        """Refusal attempts recorded for the encounter, oldest first."""
        rows = self._conn.execute(
            sa.select(rx_refusals)
            .where(rx_refusals.c.encounter_id == encounter_id)
            .order_by(rx_refusals.c.created_at, rx_refusals.c.id)
        ).all()
        return [RefusalRecord(**row._asdict()) for row in rows]
