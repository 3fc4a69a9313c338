"""A saved draft carries the doctor's exclusions of earlier conditions still in force, so the server's gate
(which re-checks earlier visits' conditions) honours them; without exclusions the synced draft is unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import PrescribingService, prescriber_for
from desktop.store import LocalStore
from shared.records.prescription import DraftCreate
from shared.sync.prescription_merge import CONTENT_FIELDS, merge_draft
from shared.sync.protocol import Change, RecordKind

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")
MBBS = prescriber_for(
    {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}, "doctor", "opd"
)
REASON = "Delivered 3 Oct 2026, not breastfeeding"


def queued(local_store: LocalStore) -> list[Change]:
    with local_store.uow.read() as uow:
        entries = uow.outbox.peek_unsent(100)
    return [e.to_change() for e in entries if e.kind == RecordKind.PRESCRIPTION_DRAFT]


def test_the_queued_draft_carries_the_exclusions_in_force(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    encounters = EncounterService(writer=local_store.writer, uow=local_store.uow, clock=local_store.clock)
    rx = PrescribingService(writer=local_store.writer, uow=local_store.uow, clock=local_store.clock)
    patient = patient_service.register({"name": "Sita Devi", "gender": "F", "year_of_birth": 1996}, "t")

    def visit(start: datetime) -> uuid.UUID:
        body = {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": start, "chief_complaint": "V"}
        return encounters.start(body, DOCTOR).id

    earlier = visit(datetime(2026, 1, 12, 10, tzinfo=UTC))
    note = {"assessment": {"primary_diagnosis": {"condition": "Pregnancy", "code": "77386006"}}}
    encounters.save_draft(earlier, {"soap_note": note})
    encounters.complete(earlier)
    today = visit(datetime(2026, 11, 25, 10, tzinfo=UTC))

    # No exclusion: the synced content is exactly what servers before the field accept.
    assert rx.save(today, ["Metf 1000 bd 30d"], MBBS, DOCTOR) is not None
    assert "excluded_conditions" not in queued(local_store)[-1].fields

    (pregnancy,) = rx.patient_conditions.earlier(today).items
    rx.patient_conditions.exclude(today, pregnancy, REASON, DOCTOR)
    assert rx.save(today, ["warfarin 5 od x 30d"], MBBS, DOCTOR) is not None
    change = queued(local_store)[-1]
    assert change.fields["excluded_conditions"] == [{"condition": "SNOMED:77386006", "reason": REASON}]
    assert change.field_hlcs["excluded_conditions"] == change.field_hlcs["medications"]
    # It is a whole content unit to the shared merge, and a valid REST draft body too.
    merged = merge_draft({}, {}, change.fields, change.field_hlcs)
    assert merged.fields["excluded_conditions"] == change.fields["excluded_conditions"]
    body = DraftCreate.model_validate(
        {"encounter_id": str(today), "medications": change.fields["medications"],
         "excluded_conditions": change.fields["excluded_conditions"]}
    )  # fmt: skip
    assert body.excluded_conditions[0].condition == "SNOMED:77386006"
    assert set(change.fields) == {*CONTENT_FIELDS, "excluded_conditions", "encounter_id", "patient_id", "deleted"}

    # Put back (included again): the next save no longer carries it.
    rx.patient_conditions.include(today, rx.patient_conditions.earlier(today).items[0], DOCTOR)
    assert rx.save(today, ["Metf 1000 bd 30d"], MBBS, DOCTOR) is not None
    assert "excluded_conditions" not in queued(local_store)[-1].fields
