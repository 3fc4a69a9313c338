"""Store triggers: a completed encounter and a final prescription are immutable, audit rows append-only."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

import pytest

from desktop.config import DesktopSettings
from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.store import LocalStore

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")


def _completed(local_store: LocalStore, patient_service: PatientService) -> uuid.UUID:
    patient = patient_service.register({"name": "Meena Devi", "gender": "F", "year_of_birth": 1970}, "t")
    service = EncounterService(writer=local_store.writer, uow=local_store.uow)
    encounter = service.start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": datetime(2026, 11, 25, tzinfo=UTC),
         "chief_complaint": "Cough"},
        DOCTOR,
    )  # fmt: skip
    service.complete(encounter.id)
    service.add_addendum(encounter.id, {"text": "X-ray normal."}, DOCTOR)
    return encounter.id


def test_triggers_refuse_any_writer(
    local_store: LocalStore, patient_service: PatientService, desktop_settings: DesktopSettings
) -> None:
    encounter_id = str(_completed(local_store, patient_service))
    conn = sqlite3.connect(desktop_settings.database_path)
    try:
        for statement, message in (
            ("UPDATE encounters SET chief_complaint = 'edited' WHERE id = ?", "cannot be changed"),
            ("DELETE FROM encounters WHERE id = ?", "cannot be deleted"),
            ("UPDATE encounter_addenda SET text = 'edited' WHERE encounter_id = ?", "append-only"),
            ("DELETE FROM encounter_addenda WHERE encounter_id = ?", "append-only"),
        ):
            with pytest.raises(sqlite3.IntegrityError, match=message):
                conn.execute(statement, (encounter_id,))
        row = conn.execute("SELECT chief_complaint, status FROM encounters WHERE id = ?", (encounter_id,)).fetchone()
        assert row == ("Cough", "completed")
    finally:
        conn.close()


def test_addendum_on_a_draft_is_refused_by_the_trigger(
    local_store: LocalStore, patient_service: PatientService, desktop_settings: DesktopSettings
) -> None:
    patient = patient_service.register({"name": "Arun Kumar", "gender": "M", "year_of_birth": 1980}, "t")
    draft = EncounterService(writer=local_store.writer, uow=local_store.uow).start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": datetime(2026, 11, 25, tzinfo=UTC),
         "chief_complaint": "Fever"},
        DOCTOR,
    )  # fmt: skip
    conn = sqlite3.connect(desktop_settings.database_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="only be added to a completed"):
            conn.execute(
                "INSERT INTO encounter_addenda (id, encounter_id, author_id, text, created_at) VALUES (?, ?, ?, ?, ?)",
                (str(uuid.uuid4()), str(draft.id), str(DOCTOR), "note", "2026-11-25T00:00:00.000000+00:00"),
            )
    finally:
        conn.close()
