"""Signed prescriptions in the local store (SQL only): one row per prescription, written once (triggers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from desktop.store.tables import prescriptions, signed_prescriptions


@dataclass(frozen=True)
class SignedRecord:
    prescription_id: uuid.UUID
    signer_id: uuid.UUID
    signer_kid: str
    signed_at: datetime
    expires_at: datetime
    content_hash: str
    cose: bytes
    qr_payload: str
    sandbox: bool


class SignedPrescriptionRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def find(self, prescription_id: uuid.UUID) -> SignedRecord | None:
        row = self._conn.execute(
            sa.select(signed_prescriptions).where(signed_prescriptions.c.prescription_id == prescription_id)
        ).first()
        return SignedRecord(**row._mapping) if row is not None else None

    def add(self, record: SignedRecord, *, finalised_at: datetime) -> None:
        """Store the signature and make the prescription ``final`` (its trigger freezes it) in one go.

        A prescription already final (its encounter was completed) stays as it is: signing adds the signature.
        """
        status = self._conn.execute(
            sa.select(prescriptions.c.status).where(prescriptions.c.id == record.prescription_id)
        ).scalar_one_or_none()
        if status is None:
            raise LookupError(f"prescription {record.prescription_id} is not on this PC")
        self._conn.execute(sa.insert(signed_prescriptions).values(**record.__dict__))
        if status == "draft":
            self._conn.execute(
                sa.update(prescriptions)
                .where(prescriptions.c.id == record.prescription_id)
                .values(status="final", updated_at=finalised_at, version=prescriptions.c.version + 1)
            )
