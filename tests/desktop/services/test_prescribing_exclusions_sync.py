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


def pregnant_earlier(local_store: LocalStore, patient_service: PatientService) -> tuple[PrescribingService, uuid.UUID]:
    """A patient whose earlier, completed visit diagnosed pregnancy; the prescribing service and today's visit."""
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
    return rx, visit(datetime(2026, 11, 25, 10, tzinfo=UTC))


def test_the_queued_draft_carries_the_exclusions_in_force(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    rx, today = pregnant_earlier(local_store, patient_service)

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


def test_pulled_drafts_bring_their_exclusions_and_take_them_back(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    """PC B: a draft from PC A that excludes the earlier pregnancy makes B's pad leave it out too (audited in
    the prescriber's name); A's next draft, without it, checks it again here; an older draft changes nothing."""
    from desktop.store.prescriptions import PrescriptionRepository
    from shared.clock import Stamp, encode
    from shared.sync.protocol import Op
    from tests.desktop.services.test_prescribing_sync import apply_pulled

    rx, today = pregnant_earlier(local_store, patient_service)
    saved = rx.save(today, ["Metf 1000 bd 30d"], MBBS, DOCTOR)
    assert saved is not None
    base = {**queued(local_store)[-1].fields, "lines": ["warfarin 5 od x 30d"]}
    other_doctor = uuid.UUID("019ab000-0000-7000-8000-00000000d0c2")

    def pull(fields: dict[str, object], wall_ms: int) -> None:
        stamp = encode(Stamp(wall_ms, 0, "pc-a"))
        change = Change(
            kind=RecordKind.PRESCRIPTION_DRAFT, id=saved.id, op=Op.UPSERT, hlc=stamp, fields=fields,
            field_hlcs=dict.fromkeys(fields, stamp),
        )  # fmt: skip
        apply_pulled(local_store, change)

    def state() -> list[str | None]:
        return [item.excluded_reason for item in rx.patient_conditions.earlier(today).items]

    assert state() == [None]
    excluding = {**base, "prescriber_id": str(other_doctor),
                 "excluded_conditions": [{"condition": "SNOMED:77386006", "reason": REASON}]}  # fmt: skip
    pull(excluding, 2**41)
    assert state() == [REASON]
    with local_store.uow.read() as uow:
        (row,) = PrescriptionRepository(uow.connection).overrides(today)
    assert (row.rule_id, row.alert_key, row.user_id, row.reason) == (
        "CONDITION-EXCLUDED",
        "condition:SNOMED:77386006",
        other_doctor,
        REASON,
    )
    pull(excluding, 2**41 + 1)  # the same content again (an echo): nothing new recorded
    pull({**base, "prescriber_id": str(other_doctor)}, 2**41 + 2)  # A put it back: checked again here
    assert state() == [None]
    pull(excluding, 2**40)  # an older draft loses the merge: its exclusions are not taken
    assert state() == [None]
    with local_store.uow.read() as uow:
        rules = [r.rule_id for r in PrescriptionRepository(uow.connection).overrides(today)]
    assert rules == ["CONDITION-EXCLUDED", "CONDITION-INCLUDED"]

    # A's override of a major alert comes with the content too: this PC's pad sees it overridden.
    lines = ["warfarin 5 od x 30d", "aspirin 75 od x 30d"]
    (major,) = [a for a in rx.check(lines, [], MBBS).alerts if a.tier == "override"]
    why = "Mechanical valve; cardiologist advised, INR weekly"
    synced = {"rule_id": major.rule_id, "reason": why, "alert_key": major.key, "names": list(major.names)}
    pull({**base, "lines": lines, "prescriber_id": str(other_doctor), "overrides": [synced]}, 2**41 + 3)
    assert rx.override_reasons(today)[major.key] == why
    (again,) = [a for a in rx.check(lines, [], MBBS, rx.override_reasons(today)).alerts if a.tier == "override"]
    assert again.overridden_reason == why
    # Without the alert's key (a REST draft) the rule alone is not taken: the pad asks again.
    bare = {"rule_id": major.rule_id, "reason": "Another reason, typed through the API"}
    pull({**base, "lines": lines, "prescriber_id": str(other_doctor), "overrides": [bare]}, 2**41 + 4)
    assert rx.override_reasons(today)[major.key] == why
    assert [o.user_id for o in rx.overrides(today) if o.alert_key == major.key] == [other_doctor]
