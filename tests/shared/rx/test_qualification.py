"""Prescribing policy: table-driven verdicts for MBBS, BAMS, BUMS and BHMS prescribers, state entries,
schedules and teleconsultation lists; policy validation; every refusal names its rule and source."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rx.formulary import Formulary
from shared.rx.qualification import (
    PolicyError,
    PrescribableItem,
    Prescriber,
    PrescribingPolicy,
    Verdict,
    item_from_resolved,
    may_prescribe,
)

POLICY_TEXT = (resources.files("shared.knowledge") / "prescribing_policy.yaml").read_text(encoding="utf-8")
POLICY = PrescribingPolicy.load_default()
RULE_IDS = {r.id for r in POLICY.file.rules} | {s.id for s in POLICY.file.state_policies}

MBBS = {"system_of_medicine": "modern", "qualification": "M.B.B.S., MD (Medicine)", "state": "KA"}
BAMS = {"system_of_medicine": "ayurveda", "qualification": "BAMS", "state": "MH"}
BUMS = {"system_of_medicine": "unani", "qualification": "B.U.M.S.", "state": "UP"}
BHMS = {"system_of_medicine": "homoeopathy", "qualification": "BHMS", "state": "KA"}
WARFARIN = {"name": "WARFARIN", "system": "modern", "generic": "warfarin", "schedules": ["H"]}
PARACETAMOL = {"name": "PARACETAMOL", "system": "modern", "generic": "paracetamol", "tpg_list": "O"}
ALPRAZOLAM = {"name": "ALPRAZOLAM", "system": "modern", "generic": "alprazolam", "schedules": ["H1", "NDPS"]}
X_DRUG = {"name": "SCHEDULE X DRUG", "system": "modern", "generic": "x", "schedules": ["X"]}
TRIPHALA = {"name": "TRIPHALA CHURNA", "system": "ayurveda"}
VATSANABHA = {"name": "VATSANABHA PRODUCT", "system": "ayurveda", "schedules": ["E1"]}
UNANI_ITEM = {"name": "KHAMIRA", "system": "unani"}
HOMOEO_ITEM = {"name": "ARNICA 30C", "system": "homoeopathy"}


def tele(base: dict[str, Any], mode: str, **extra: Any) -> dict[str, Any]:
    return {**base, "consultation_mode": mode, **extra}


def listed(item: dict[str, Any], tpg: str) -> dict[str, Any]:
    return {**item, "tpg_list": tpg}


# (description, prescriber, item, allowed, advisory, rule id)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool, bool, str]] = [
    ("MBBS writes a modern drug", MBBS, WARFARIN, True, False, "QP-051"),
    ("MBBS writes Schedule X in person: extra fields", MBBS, X_DRUG, True, True, "QP-050"),
    ("MBBS writes an NDPS drug in person: extra fields", MBBS, ALPRAZOLAM, True, True, "QP-050"),
    ("MBBS, video: no Schedule X", tele(MBBS, "video"), X_DRUG, False, False, "QP-010"),
    ("MBBS, audio: no NDPS", tele(MBBS, "audio"), ALPRAZOLAM, False, False, "QP-010"),
    ("MBBS, text: TPG prohibited", tele(MBBS, "text"), listed(WARFARIN, "prohibited"), False, False, "QP-011"),
    ("MBBS, audio, first consult: List A", tele(MBBS, "audio"), listed(WARFARIN, "A"), False, False, "QP-041"),
    ("MBBS, video, first consult: List A", tele(MBBS, "video"), listed(WARFARIN, "A"), True, False, "QP-051"),
    ("MBBS, audio follow-up refill: List A", tele(MBBS, "audio", is_follow_up=True), listed(WARFARIN, "A"), True,
     False, "QP-051"),
    ("MBBS, video follow-up, never seen: List B", tele(MBBS, "video", is_follow_up=True), listed(WARFARIN, "B"),
     False, False, "QP-042"),
    ("MBBS, video first consult, seen before: List B", tele(MBBS, "video", prior_in_person_visit=True),
     listed(WARFARIN, "B"), False, False, "QP-043"),
    ("MBBS, follow-up, seen before: List B", tele(MBBS, "text", is_follow_up=True, prior_in_person_visit=True),
     listed(WARFARIN, "B"), True, False, "QP-051"),
    ("MBBS, audio: List O", tele(MBBS, "audio"), PARACETAMOL, True, False, "QP-051"),
    ("MBBS, video: no TPG list recorded", tele(MBBS, "video"), WARFARIN, True, True, "QP-044"),
    ("MBBS writes an AYUSH medicine: clinic warns", MBBS, TRIPHALA, True, True, "QP-060"),
    ("declared modern but holds BAMS", {**MBBS, "qualification": "BAMS"}, WARFARIN, False, False, "QP-001"),
    ("unrecognised qualification", {**MBBS, "qualification": "Diploma in Pharmacy"}, WARFARIN, False, False, "QP-001"),
    ("BAMS writes Ayurveda", BAMS, TRIPHALA, True, False, "QP-071"),
    ("BAMS writes Ayurveda by video", tele(BAMS, "video"), TRIPHALA, True, False, "QP-071"),
    ("BAMS writes a Schedule E(1) item", BAMS, VATSANABHA, True, True, "QP-070"),
    ("BAMS in MH writes a modern drug: entry not verified", BAMS, WARFARIN, False, False, "SP-MH-AYURVEDA"),
    ("BAMS in Karnataka writes a modern drug: no entry", {**BAMS, "state": "KA"}, WARFARIN, False, False, "QP-030"),
    ("BAMS with no state writes a modern drug", {**BAMS, "state": ""}, WARFARIN, False, False, "QP-030"),
    ("BAMS writes Schedule X", BAMS, X_DRUG, False, False, "QP-012"),
    ("BAMS writes NDPS", BAMS, ALPRAZOLAM, False, False, "QP-012"),
    ("BAMS writes Unani", BAMS, UNANI_ITEM, False, False, "QP-031"),
    ("BAMS in Bihar: unclear entry", {**BAMS, "state": "Bihar"}, PARACETAMOL, False, False, "SP-BR-AYURVEDA"),
    ("BUMS in UP writes a modern drug: entry not verified", BUMS, PARACETAMOL, False, False, "SP-UP-UNANI"),
    ("BUMS writes Unani", BUMS, UNANI_ITEM, True, False, "QP-071"),
    ("BHMS writes a modern drug", BHMS, PARACETAMOL, False, False, "QP-020"),
    ("BHMS writes Ayurveda", BHMS, TRIPHALA, False, False, "QP-020"),
    ("BHMS writes homoeopathy", BHMS, HOMOEO_ITEM, True, False, "QP-071"),
]  # fmt: skip


def verdict(prescriber: dict[str, Any], item: dict[str, Any], policy: PrescribingPolicy | None = None) -> Verdict:
    return may_prescribe(Prescriber.model_validate(prescriber), PrescribableItem.model_validate(item), policy)


class TestPolicyTable:
    @pytest.mark.parametrize(
        ("prescriber", "item", "allowed", "advisory", "rule_id"),
        [pytest.param(*case[1:], id=case[0]) for case in CASES],
    )
    def test_verdict(
        self, prescriber: dict[str, Any], item: dict[str, Any], allowed: bool, advisory: bool, rule_id: str
    ) -> None:
        result = verdict(prescriber, item)
        assert (result.allowed, result.advisory, result.rule_id) == (allowed, advisory, rule_id), result.reason
        assert result.source
        assert result.reason
        assert result.policy_version == POLICY.version

    def test_every_refusal_names_its_rule_and_source(self) -> None:
        for _, prescriber, item, *_ in CASES:
            result = verdict(prescriber, item)
            assert result.rule_id in RULE_IDS
            if not result.allowed:
                assert len(result.source) > 20

    def test_clinic_may_block_cross_system_prescribing(self) -> None:
        result = may_prescribe(
            Prescriber.model_validate(MBBS), PrescribableItem.model_validate(TRIPHALA), cross_system="block"
        )
        assert (result.allowed, result.rule_id) == (False, "QP-060")
        assert "blocked" in result.reason

    @pytest.mark.parametrize("state", ["MH", "mh", "IN-MH", "Maharashtra", " maharashtra "])
    def test_state_is_matched_by_code_or_name(self, state: str) -> None:
        assert verdict({**BAMS, "state": state}, WARFARIN).rule_id == "SP-MH-AYURVEDA"

    def test_qualification_detail_explains_a_mismatch(self) -> None:
        result = verdict({**MBBS, "qualification": "BAMS"}, WARFARIN)
        assert "BAMS is ayurveda; declared system: modern" in result.reason

    def test_shipped_state_entries_are_all_unverified_so_denied(self) -> None:
        assert POLICY.file.state_policies
        assert all(s.verified_on is None and not s.allow_list for s in POLICY.file.state_policies)
        assert POLICY.file.status == "draft"


def verified_mh(**changes: Any) -> PrescribingPolicy:
    doc = yaml.safe_load(POLICY_TEXT)
    entry = next(s for s in doc["state_policies"] if s["id"] == "SP-MH-AYURVEDA")
    entry.update({"verified_on": "2026-01-15", "allow_list": ["paracetamol", "amoxicillin"], **changes})
    return PrescribingPolicy.from_text(yaml.safe_dump(doc, allow_unicode=True))


CERTIFIED = {**BAMS, "certificates": ["pharmacology_bridge_course"]}


class TestVerifiedStateEntry:
    def test_listed_drug_with_certificate_in_person_is_allowed(self) -> None:
        result = verdict(CERTIFIED, PARACETAMOL, verified_mh())
        assert (result.allowed, result.rule_id) == (True, "SP-MH-AYURVEDA")
        assert "Maharashtra Medical Practitioners Act 1961" in result.source

    @pytest.mark.parametrize(
        ("prescriber", "item", "reason"),
        [
            (BAMS, PARACETAMOL, "pharmacology_bridge_course"),
            (CERTIFIED, WARFARIN, "not on the state's allow-list"),
            (tele(CERTIFIED, "video"), PARACETAMOL, "teleconsultation"),
            ({**CERTIFIED, "state": "UP"}, PARACETAMOL, "not been legally reviewed"),
        ],
        ids=["no-certificate", "not-listed", "tele", "other-state"],
    )
    def test_everything_else_is_refused(self, prescriber: dict[str, Any], item: dict[str, Any], reason: str) -> None:
        result = verdict(prescriber, item, verified_mh())
        assert not result.allowed
        assert reason in result.reason

    def test_schedule_x_is_refused_before_the_state_entry(self) -> None:
        result = verdict(CERTIFIED, {**X_DRUG, "generic": "paracetamol"}, verified_mh())
        assert (result.allowed, result.rule_id) == (False, "QP-012")

    def test_the_entry_itself_also_excludes_schedule_x(self) -> None:
        # QP-012 refuses Schedule X first; the entry's own `never` is a second guard, seen without QP-012
        doc = yaml.safe_load(POLICY_TEXT)
        doc["rules"] = [r for r in doc["rules"] if r["id"] != "QP-012"]
        entry = next(s for s in doc["state_policies"] if s["id"] == "SP-MH-AYURVEDA")
        entry.update(verified_on="2026-01-15", allow_list=["paracetamol"])
        policy = PrescribingPolicy.from_text(yaml.safe_dump(doc, allow_unicode=True))
        result = verdict(CERTIFIED, {**X_DRUG, "generic": "paracetamol"}, policy)
        assert (result.allowed, result.rule_id) == (False, "SP-MH-AYURVEDA")
        assert "Schedule X" in result.reason
        assert verdict(CERTIFIED, {**PARACETAMOL, "schedules": ["H1"]}, policy).allowed

    def test_a_denied_entry_refuses(self) -> None:
        result = verdict(CERTIFIED, PARACETAMOL, verified_mh(allopathy="denied"))
        assert (result.allowed, result.rule_id) == (False, "SP-MH-AYURVEDA")
        assert "denied" in result.reason


def broken(edit: Any) -> str:
    doc = yaml.safe_load(POLICY_TEXT)
    edit(doc)
    return str(yaml.safe_dump(doc, allow_unicode=True))


class TestPolicyValidation:
    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda d: d["rules"].append(dict(d["rules"][0])), "unique"),
            (lambda d: d["rules"][0].update(source="nowhere"), "unknown source"),
            (lambda d: d["rules"].pop(), "last rule"),
            (lambda d: d["rules"][0].update(effect="maybe"), "effect"),
            (lambda d: d["rules"][0]["when"].update(colour="red"), "colour"),
            (lambda d: d["state_policies"].append(dict(d["state_policies"][0], id="SP-MH-AYURVEDA_TWO")), "one state"),
            (lambda d: d["qualifications"]["MBBS"].update(system="allopathy"), "system"),
        ],
        ids=["dup-id", "source", "catch-all", "effect", "when-key", "state-twice", "system"],
    )
    def test_bad_policy_is_refused(self, edit: Any, message: str) -> None:
        with pytest.raises(PolicyError, match=message):
            PrescribingPolicy.from_text(broken(edit))

    def test_bad_yaml_is_refused(self) -> None:
        with pytest.raises(PolicyError, match="not valid YAML"):
            PrescribingPolicy.from_text("rules: [")


FORMULARY_YAML = """
schema: integmed-formulary
schema_version: 1
version: "0.0.1"
date: 2026-11-25
sources:
  t: {title: "test fixture"}
drugs:
  - generic: levofloxacin
    source: t
    schedule: {value: H1, source: t}
  - generic: paracetamol
    source: t
herbs:
  - key: aconitum_ferox
    latin: Aconitum ferox
    source: t
    sanskrit: [Vatsanabha]
    schedule_e1: true
  - key: piper_nigrum
    latin: Piper nigrum
    source: t
    sanskrit: [Maricha]
formulations:
  - key: TEST_VATI
    name: Test Vati
    ingredients: [herb:aconitum_ferox, herb:piper_nigrum]
    source: t
"""


class TestItemsFromTheFormulary:
    def test_schedules_come_from_the_formulary(self) -> None:
        formulary = Formulary.from_texts([FORMULARY_YAML])
        levo = formulary.resolve("levofloxacin")
        vati = formulary.resolve("Test Vati")
        maricha = formulary.resolve("Maricha")
        assert levo is not None and vati is not None and maricha is not None
        assert item_from_resolved(levo, formulary).schedules == {"H1"}
        assert item_from_resolved(levo, formulary).generic == "levofloxacin"
        assert item_from_resolved(vati, formulary).schedules == {"E1"}
        assert item_from_resolved(maricha, formulary).schedules == frozenset()
        bams = Prescriber.model_validate(BAMS)
        assert may_prescribe(bams, item_from_resolved(vati, formulary)).rule_id == "QP-070"


SYSTEMS = ["modern", "ayurveda", "unani", "siddha", "sowa_rigpa", "homoeopathy"]


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        st.sampled_from(SYSTEMS),
        st.sampled_from(["MBBS", "BAMS", "BUMS", "BSMS", "BHMS", "", "💊" * 50, "MBBS BAMS"]),
        st.sampled_from(["MH", "UP", "PB", "BR", "KA", "", "IN-UP", "x" * 100]),
        st.sampled_from(["in_person", "video", "audio", "text"]),
        st.booleans(),
        st.booleans(),
        st.sampled_from(SYSTEMS),
        st.frozensets(st.sampled_from(["H", "H1", "X", "G", "NDPS", "E1", "OTC"])),
        st.sampled_from([None, "O", "A", "B", "prohibited"]),
    )
    def test_every_combination_gets_a_sourced_verdict(
        self,
        system: Any,
        qualification: str,
        state: str,
        mode: Any,
        follow_up: bool,
        seen: bool,
        item_system: Any,
        schedules: Any,
        tpg: Any,
    ) -> None:
        prescriber = Prescriber(
            system_of_medicine=system,
            qualification=qualification,
            state=state,
            consultation_mode=mode,
            is_follow_up=follow_up,
            prior_in_person_visit=seen,
        )
        item = PrescribableItem(name="ITEM", system=item_system, generic="item", schedules=schedules, tpg_list=tpg)
        result = may_prescribe(prescriber, item)
        assert result.rule_id in RULE_IDS
        assert result.source
        if system != "modern" and schedules & {"X", "NDPS"}:
            assert not result.allowed
        if mode != "in_person" and schedules & {"X", "NDPS"}:
            assert not result.allowed
        if system != "modern" and item_system == "modern":
            assert not result.allowed  # no shipped state entry is verified
