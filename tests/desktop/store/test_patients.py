"""Patient repository: FTS5 search in every script and by number, ranking, per-field LWW with history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from desktop.services.patients import PatientService
from desktop.store import LocalStore
from desktop.store.patients import plan_search, search_fold
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.protocol import JsonValue
from tests.factories import make_patient

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


@pytest.fixture
def people(patient_service: PatientService) -> dict[str, str]:
    """A small register in several scripts; name -> id."""
    rows: list[dict[str, Any]] = [
        {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"},
        {"name": "Radha Krishnan", "gender": "F", "year_of_birth": 1985, "mobile": "+919812300002"},
        {"name": "Arun Radhakrishnan", "gender": "M", "year_of_birth": 1970, "mobile": "+917012345678"},
        {"name": "José Müller", "gender": "M", "year_of_birth": 1960},
        {"name": "முருகன் செல்வம்", "gender": "M", "year_of_birth": 1975, "abha_number": "91-3772-0586-4665"},
        {"name": "Radha", "gender": "F", "year_of_birth": 2001, "abha_address": "radha.k@abdm"},
    ]
    return {row["name"]: str(patient_service.register(row, actor="test").id) for row in rows}


def names(patient_service: PatientService, query: str) -> list[str]:
    return [p.name for p in patient_service.search(query)]


class TestSearch:
    @pytest.mark.parametrize("query", ["rad", "RAD", "Rad", "rAdHa"])
    def test_latin_names_by_prefix_ignoring_case(
        self, patient_service: PatientService, people: dict[str, str], query: str
    ) -> None:
        assert set(names(patient_service, query)) == {"Radha Krishnan", "Radha", "Arun Radhakrishnan"}

    def test_devanagari_prefix_as_typed(self, patient_service: PatientService, people: dict[str, str]) -> None:
        assert names(patient_service, "राध") == ["राधा कुमारी"]
        assert names(patient_service, "कुमा") == ["राधा कुमारी"]
        assert names(patient_service, "राधा कुमारी") == ["राधा कुमारी"]

    def test_tamil_prefix(self, patient_service: PatientService, people: dict[str, str]) -> None:
        assert names(patient_service, "முரு") == ["முருகன் செல்வம்"]

    def test_latin_accents_are_ignored(self, patient_service: PatientService, people: dict[str, str]) -> None:
        assert names(patient_service, "jose mull") == ["José Müller"]
        assert names(patient_service, "MÜLLER") == ["José Müller"]

    def test_several_words_each_match_the_start_of_a_name_word(
        self, patient_service: PatientService, people: dict[str, str]
    ) -> None:
        assert names(patient_service, "kris rad") == ["Radha Krishnan"]
        assert names(patient_service, "radhak") == ["Arun Radhakrishnan"]

    def test_exact_name_then_names_starting_with_the_query_then_other_matches(
        self, patient_service: PatientService, people: dict[str, str]
    ) -> None:
        patient_service.register({"name": "Kumar Radha", "gender": "M", "year_of_birth": 1950}, actor="test")
        found = names(patient_service, "radha")
        assert found[:2] == ["Radha", "Radha Krishnan"]
        assert set(found[2:]) == {"Kumar Radha", "Arun Radhakrishnan"}

    @pytest.mark.parametrize(
        "query", ["9812300002", "98123", "+91 98123 00002", "+919812300002", "09812300002", "919812300002", "0002"]
    )
    def test_mobile_by_digits(self, patient_service: PatientService, people: dict[str, str], query: str) -> None:
        assert "Radha Krishnan" in names(patient_service, query)
        if len(query.replace(" ", "")) >= 10:
            assert names(patient_service, query) == ["Radha Krishnan"]

    def test_any_run_of_mobile_digits_finds_the_patient(
        self, patient_service: PatientService, people: dict[str, str]
    ) -> None:
        assert names(patient_service, "2345") == ["Arun Radhakrishnan"]  # inside +917012345678

    @pytest.mark.parametrize("query", ["91-3772-0586-4665", "91377205864665", "91 3772 0586 4665", "91-3772", "913772"])
    def test_abha_number_with_or_without_dashes(
        self, patient_service: PatientService, people: dict[str, str], query: str
    ) -> None:
        assert names(patient_service, query) == ["முருகன் செல்வம்"]

    def test_abha_address(self, patient_service: PatientService, people: dict[str, str]) -> None:
        assert names(patient_service, "Radha.K@abdm") == ["Radha"]
        assert names(patient_service, "radha.k@") == ["Radha"]

    def test_name_and_digits_together(self, patient_service: PatientService, people: dict[str, str]) -> None:
        assert names(patient_service, "radha 0002") == ["Radha Krishnan"]
        patient_service.register({"name": "Baby 2 of Sita", "gender": "F", "year_of_birth": 2025}, actor="t")
        assert names(patient_service, "baby 2") == ["Baby 2 of Sita"]

    def test_edits_and_deletes_reach_the_index(self, patient_service: PatientService, people: dict[str, str]) -> None:
        radha = people["Radha Krishnan"]
        patient = patient_service.update(uuid_of(radha), {"name": "Lakshmi Krishnan", "mobile": None}, "test")
        assert names(patient_service, "laksh") == ["Lakshmi Krishnan"]
        assert "Lakshmi Krishnan" not in names(patient_service, "9812300002")
        patient_service.delete(patient.id, "test")
        assert names(patient_service, "laksh") == []

    @pytest.mark.parametrize("query", ['"', "*", "a OR b", "NEAR(", "name:", "-", "   ", "'; DROP TABLE patients; --"])
    def test_query_syntax_is_never_interpreted(
        self, patient_service: PatientService, people: dict[str, str], query: str
    ) -> None:
        patient_service.search(query)  # no FTS5 syntax error
        assert patient_service.count() == len(people)

    def test_limit(self, patient_service: PatientService, people: dict[str, str]) -> None:
        assert len(patient_service.search("98123", limit=1)) == 1
        assert patient_service.search("98123", limit=0) == []

    def test_common_name_pages_skip_deleted_patients_and_keep_the_order(self, patient_service: PatientService) -> None:
        made = [
            patient_service.register({"name": f"Kumar {chr(65 + i % 26)}", "gender": "M", "year_of_birth": 1980}, "t")
            for i in range(30)
        ]
        for patient in made[::3]:
            patient_service.delete(patient.id, "t")
        alive = sorted((p for i, p in enumerate(made) if i % 3), key=lambda p: (p.name, str(p.id)))
        assert [p.id for p in patient_service.search("kumar", limit=7)] == [p.id for p in alive[:7]]
        assert [p.id for p in patient_service.search("kumar", limit=100)] == [p.id for p in alive]

    def test_plan_treats_native_digits_as_digits(self) -> None:
        plan = plan_search("९८१२३")  # Devanagari digits
        assert plan is not None
        assert plan.digit_variants == ("98123",)


def uuid_of(text: str) -> uuid.UUID:
    return uuid.UUID(text)


class TestLastWriterWins:
    def _stamp(self, wall_ms: int, node: str = "other-pc") -> str:
        return encode(Stamp(wall_ms, 0, node))

    def test_older_incoming_value_loses_and_is_kept_in_history(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        patient = patient_service.register(make_patient(name="Sita Ram"), actor="test")
        older = self._stamp(1_000)  # long before the local registration

        def merge_older() -> None:
            with local_store.uow.write() as uow:
                result = uow.patients.update_fields(
                    patient.id, {"name": "Sita Devi"}, {"name": older}, source="sync", now=NOW
                )
                assert result.outcome.value == "noop"
                uow.commit()

        local_store.writer.run(merge_older)
        assert patient_service.get(patient.id).name == "Sita Ram"
        (entry,) = patient_service.history(patient.id)
        assert (entry.field, entry.value, entry.hlc, entry.side, entry.source) == (
            "name",
            "Sita Devi",
            older,
            "incoming",
            "sync",
        )

        local_store.writer.run(merge_older)  # the same page pulled again
        assert len(patient_service.history(patient.id)) == 1

    def test_newer_incoming_value_wins_and_the_replaced_one_is_kept(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        patient = patient_service.register(make_patient(mobile="+919811111111"), actor="test")
        newer = self._stamp(local_store.clock.now().wall_ms + 60_000)

        def merge_newer() -> None:
            with local_store.uow.write() as uow:
                uow.patients.update_fields(
                    patient.id, {"mobile": "+919822222222"}, {"mobile": newer}, source="sync", now=NOW
                )
                uow.commit()

        local_store.writer.run(merge_newer)
        stored = patient_service.get(patient.id)
        assert stored.mobile == "+919822222222"
        assert stored.version == 2
        (entry,) = patient_service.history(patient.id)
        assert (entry.value, entry.side, entry.replaced_by_hlc) == ("+919811111111", "current", newer)
        assert names(patient_service, "22222222") == [patient.name]

    def test_insert_many_stores_pulled_patients_like_insert(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        stamp = self._stamp(5_000)
        ids = [uuid7(), uuid7()]
        bodies: list[dict[str, JsonValue]] = [
            {"name": "Pulled One", "gender": "F", "year_of_birth": 1990},
            {"name": "Pulled Two", "gender": "M", "year_of_birth": 1991, "mobile": "+919800000077"},
        ]

        def insert() -> int:
            with local_store.uow.write() as uow:
                stored = uow.patients.insert_many(
                    [(i, f, dict.fromkeys(f, stamp)) for i, f in zip(ids, bodies, strict=True)],
                    clinic_id=uuid7(),
                    now=NOW,
                )
                assert uow.patients.known_ids([*ids, uuid7()]) == set(ids)
                uow.commit()
                return stored

        assert local_store.writer.run(insert) == 2
        assert names(patient_service, "pulled") == ["Pulled One", "Pulled Two"]
        assert names(patient_service, "0077") == ["Pulled Two"]
        with local_store.uow.read() as uow:
            assert uow.outbox.pending_count() == 0
            assert uow.patients.find_state(ids[1]).field_hlcs == dict.fromkeys(bodies[1], stamp)  # type: ignore[union-attr]

    def test_insert_of_a_pulled_patient(self, local_store: LocalStore, patient_service: PatientService) -> None:
        stamp = self._stamp(5_000)
        patient_id = uuid7()
        fields: dict[str, JsonValue] = {
            "name": "Pulled Person",
            "gender": "O",
            "year_of_birth": 1999,
            "abha_number": "91377205864665",
        }

        def insert() -> None:
            with local_store.uow.write() as uow:
                uow.patients.insert(
                    patient_id, clinic_id=uuid7(), fields=fields, field_hlcs=dict.fromkeys(fields, stamp), now=NOW
                )
                uow.commit()

        local_store.writer.run(insert)
        assert names(patient_service, "91-3772-0586-4665") == ["Pulled Person"]
        with local_store.uow.read() as uow:
            assert uow.outbox.pending_count() == 0  # pulled changes are not queued for pushing back
            assert uow.patients.rows_for([uuid7(), patient_id]) == [patient_service.get(patient_id)]


class TestSearchFold:
    @pytest.mark.parametrize(
        ("text", "folded"),
        [("José MÜLLER", "jose muller"), ("Jose\u0301", "jose"), ("राधा कुमारी", "राधा कुमारी")],
    )
    def test_folds_case_and_latin_accents_but_keeps_indic_marks(self, text: str, folded: str) -> None:
        assert search_fold(text) == folded
