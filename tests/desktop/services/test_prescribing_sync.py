"""The Rx pad's saves and discards queue ``prescription_draft`` changes; pulled lists merge into the local store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import PrescribingService, prescriber_for
from desktop.store import LocalStore
from desktop.sync.apply_prescriptions import apply_prescriptions
from shared.clock import Stamp, encode
from shared.sync.prescription_merge import CONTENT_FIELDS, draft_id_for
from shared.sync.protocol import Change, Op, RecordKind

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")
MBBS = prescriber_for(
    {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}, "doctor", "opd"
)


@pytest.fixture
def rx(local_store: LocalStore) -> PrescribingService:
    return PrescribingService(writer=local_store.writer, uow=local_store.uow, clock=local_store.clock)


@pytest.fixture
def encounters(local_store: LocalStore) -> EncounterService:
    return EncounterService(writer=local_store.writer, uow=local_store.uow, clock=local_store.clock)


@pytest.fixture
def encounter_id(encounters: EncounterService, patient_service: PatientService) -> uuid.UUID:
    patient = patient_service.register({"name": "Ravi Shankar", "gender": "M", "year_of_birth": 1958}, "t")
    return encounters.start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": datetime(2026, 11, 25, tzinfo=UTC),
         "chief_complaint": "Review"},
        DOCTOR,
    ).id  # fmt: skip


def queued(local_store: LocalStore) -> list[Change]:
    with local_store.uow.read() as uow:
        entries = uow.outbox.peek_unsent(100)
    return [e.to_change() for e in entries if e.kind == RecordKind.PRESCRIPTION_DRAFT]


def test_a_save_queues_the_whole_list_with_one_stamp_and_a_discard_a_tombstone(
    rx: PrescribingService, encounter_id: uuid.UUID, local_store: LocalStore
) -> None:
    saved = rx.save(encounter_id, ["Metf 1000 bd 30d"], MBBS, DOCTOR)
    assert saved is not None and saved.id == draft_id_for(encounter_id)
    (first,) = queued(local_store)
    assert first.op is Op.UPSERT and set(first.fields) == {*CONTENT_FIELDS, "encounter_id", "patient_id", "deleted"}
    assert len(set(first.field_hlcs.values())) == 1 and first.fields["medications"] == saved.medications
    assert rx.save(encounter_id, [], MBBS, DOCTOR) is None
    assert rx.saved(encounter_id) is None
    deleted = queued(local_store)[-1]
    assert deleted.op is Op.DELETE and deleted.hlc > first.hlc
    again = rx.save(encounter_id, ["amlo 5 od 30d"], MBBS, DOCTOR)  # typed again: the same record comes back
    assert again is not None and again.id == saved.id and not again.deleted
    restored = queued(local_store)[-1]
    assert restored.fields["deleted"] is False and restored.fields["encounter_id"] == str(encounter_id)


def apply_pulled(local_store: LocalStore, change: Change) -> None:
    """Apply one pulled prescription change on the store's writer, as a pulled page does."""

    def apply() -> None:
        with local_store.uow.write() as uow:
            apply_prescriptions(uow, [change], clinic_id=uuid.uuid4(), now=datetime.now(UTC))
            uow.commit()

    local_store.writer.run(apply)


def test_a_pulled_list_for_a_completed_encounter_is_kept_in_history_not_applied(
    rx: PrescribingService, encounters: EncounterService, encounter_id: uuid.UUID, local_store: LocalStore
) -> None:
    saved = rx.save(encounter_id, ["Metf 1000 bd 30d"], MBBS, DOCTOR)
    assert saved is not None
    encounters.save_draft(encounter_id, {"soap_note": {"plan": {"medications": ["Metf 1000 bd 30d"]}}})
    encounters.complete(encounter_id)
    later = encode(Stamp(2**40, 0, "pc-b"))
    fields = {
        **{k: v for k, v in (rx.saved(encounter_id).__dict__).items() if k in CONTENT_FIELDS},  # type: ignore[union-attr]
        "prescriber_id": str(DOCTOR),
        "medications": [{"generic_name": "AMLODIPINE", "frequency": "od", "duration_days": 30}],
    }
    change = Change(
        kind=RecordKind.PRESCRIPTION_DRAFT, id=saved.id, op=Op.UPSERT, hlc=later, fields=fields,
        field_hlcs=dict.fromkeys(fields, later),
    )  # fmt: skip

    apply_pulled(local_store, change)
    kept = rx.saved(encounter_id)
    assert kept is not None and kept.status == "final" and kept.medications == saved.medications
    assert [(lv.field, lv.value) for lv in rx.history(encounter_id)] == [("medications", fields["medications"])]


def test_a_draft_saved_before_drafts_synced_is_queued_whole_by_its_next_save(
    local_store: LocalStore, rx: PrescribingService, encounter_id: uuid.UUID
) -> None:
    unsynced = PrescribingService(writer=local_store.writer, uow=local_store.uow)  # no clock: the old app
    old = unsynced.save(encounter_id, ["Metf 1000 bd 30d"], MBBS, DOCTOR)
    assert old is not None and old.field_hlcs == {} and queued(local_store) == []
    again = rx.save(encounter_id, ["Metf 500 bd 30d"], MBBS, DOCTOR)
    assert again is not None and again.id == old.id  # keeps its id
    (change,) = queued(local_store)
    assert set(change.fields) == {*CONTENT_FIELDS, "encounter_id", "patient_id", "deleted"}
