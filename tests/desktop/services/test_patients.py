"""Patient service: shared validation messages, duplicate ABHA refused, stamps per changed field, tombstones."""

from __future__ import annotations

import pytest

from desktop.errors import NotFound
from desktop.services.patients import PatientService
from desktop.store import LocalStore
from desktop.store.outbox import OutboxEntry
from shared.errors import Conflict, RuleViolation
from shared.ids import uuid7
from shared.records.patient import PatientCreate
from tests.factories import make_patient, valid_abha


def _outbox(store: LocalStore) -> list[OutboxEntry]:
    with store.uow.read() as uow:
        return uow.outbox.peek_unsent(100)


class TestRegister:
    def test_normalises_like_the_server_and_queues_every_field(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        patient = patient_service.register(
            {
                "name": " राधा   कुमारी ",
                "gender": "F",
                "year_of_birth": 1990,
                "mobile": "098123 00001",
                "abha_number": "91-3772-0586-4665",
                "abha_address": "Radha.K@ABDM",
                "address": {},
            },
            actor="user-1",
        )
        assert (patient.name, patient.mobile, patient.abha_number, patient.abha_address, patient.address) == (
            "राधा कुमारी",
            "+919812300001",
            "91377205864665",
            "radha.k@abdm",
            None,
        )
        assert patient.id.version == 7
        assert patient.version == 1
        (entry,) = _outbox(local_store)
        assert entry.record_id == patient.id
        assert entry.actor == "user-1"
        assert set(entry.fields) == set(entry.field_hlcs) == set(PatientCreate.model_fields) - {"id"}
        assert set(entry.field_hlcs.values()) == {entry.hlc}

    def test_bad_fields_raise_the_shared_messages(self, patient_service: PatientService) -> None:
        with pytest.raises(RuleViolation) as caught:
            patient_service.register({"name": "Bad Row", "mobile": "12345", "gender": "Q", "year_of_birth": 3000}, "t")
        problems = {p.field: p.message for p in caught.value.problems}
        assert problems["mobile"] == "Mobile number must have 10 digits"
        assert problems["year_of_birth"].startswith("Year of birth must be between 1900 and")
        assert set(problems) == {"mobile", "gender", "year_of_birth"}
        assert patient_service.count() == 0

    def test_keeps_the_id_made_offline(self, patient_service: PatientService) -> None:
        made = uuid7()
        assert patient_service.register(PatientCreate(id=made, **make_patient()), "t").id == made
        with pytest.raises(Conflict, match="already on this computer"):
            patient_service.register(PatientCreate(id=made, **make_patient()), "t")

    def test_abha_number_or_address_already_here_is_a_conflict(self, patient_service: PatientService) -> None:
        abha = valid_abha()
        patient_service.register(make_patient(abha_number=abha, abha_address="first.one@abdm"), "t")
        with pytest.raises(Conflict, match="ABHA number"):
            patient_service.register(make_patient(abha_number=abha.replace("-", "")), "t")
        with pytest.raises(Conflict, match="ABHA address"):
            patient_service.register(make_patient(abha_address="FIRST.ONE@abdm"), "t")
        assert patient_service.count() == 1


class TestUpdate:
    def test_stamps_only_the_changed_fields_with_one_fresh_stamp(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        patient = patient_service.register(make_patient(mobile="+919811111111"), "t")
        updated = patient_service.update(patient.id, {"mobile": "9822222222", "name": patient.name}, "t")
        assert updated.mobile == "+919822222222"
        assert updated.version == 2
        created, changed = _outbox(local_store)
        assert changed.fields == {"mobile": "+919822222222"}
        assert changed.hlc > created.hlc
        with local_store.uow.read() as uow:
            state = uow.patients.find_state(patient.id)
        assert state is not None
        assert state.field_hlcs["mobile"] == changed.hlc
        assert state.field_hlcs["name"] == created.hlc
        (entry,) = patient_service.history(patient.id)
        assert (entry.field, entry.value, entry.side, entry.source) == ("mobile", "+919811111111", "current", "local")

    def test_no_change_writes_nothing(self, local_store: LocalStore, patient_service: PatientService) -> None:
        patient = patient_service.register(make_patient(), "t")
        assert patient_service.update(patient.id, {"name": patient.name}, "t") == patient
        assert len(_outbox(local_store)) == 1

    def test_whole_record_rules_apply_to_the_merged_record(self, patient_service: PatientService) -> None:
        patient = patient_service.register(make_patient(year_of_birth=1980), "t")
        with pytest.raises(RuleViolation, match="year of birth"):
            patient_service.update(patient.id, {"date_of_birth": "1981-02-03"}, "t")
        with pytest.raises(RuleViolation, match="cannot be cleared"):
            patient_service.update(patient.id, {"name": None}, "t")

    def test_unknown_or_deleted_patient_is_not_found(self, patient_service: PatientService) -> None:
        with pytest.raises(NotFound):
            patient_service.update(uuid7(), {"name": "X"}, "t")
        patient = patient_service.register(make_patient(), "t")
        patient_service.delete(patient.id, "t")
        with pytest.raises(NotFound):
            patient_service.update(patient.id, {"name": "X"}, "t")
        with pytest.raises(NotFound):
            patient_service.get(patient.id)


class TestDelete:
    def test_delete_is_a_synced_tombstone(self, local_store: LocalStore, patient_service: PatientService) -> None:
        patient = patient_service.register(make_patient(), "t")
        patient_service.delete(patient.id, "t")
        assert patient_service.count() == 0
        assert patient_service.find(patient.id) is None
        _, tombstone = _outbox(local_store)
        change = tombstone.to_change()
        assert (change.op.value, change.fields, change.id) == ("delete", {}, patient.id)
        with local_store.uow.read() as uow:
            state = uow.patients.find_state(patient.id)
        assert state is not None
        assert state.deleted
        assert state.field_hlcs["deleted"] == tombstone.hlc
