"""Interaction engine: every knowledge rule fires for its own items and not for unrelated ones; expansion,
conditions, duplicate therapy, unknown names, bad input, ordering, safety score, and knowledge validation.

Per-rule cases are generated from `shared/knowledge/interactions.yaml` itself, so a new rule is tested the
moment it is added.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.rx.formulary import Formulary
from shared.rx.interactions import (
    EXAMPLE_REQUEST,
    EXAMPLE_RESULT,
    ChainResolver,
    CheckRequest,
    CheckResult,
    Finding,
    InteractionKB,
    KnowledgeError,
    KnowledgeResolver,
    KnownName,
    RuleSpec,
    alert_tier,
    check,
    default_resolver,
    safety_score,
)

KB = InteractionKB.load_default()
RESOLVER = KnowledgeResolver(KB)
KNOWLEDGE = resources.files("shared.knowledge")
INTERACTIONS_TEXT = (KNOWLEDGE / "interactions.yaml").read_text(encoding="utf-8")
CONDITIONS_TEXT = (KNOWLEDGE / "conditions.yaml").read_text(encoding="utf-8")
SEED_IDS = (
    [f"DHI-{n:03d}" for n in range(1, 29)]
    + [f"DDI-{n:03d}" for n in range(1, 41)]
    + [f"DCI-{n:03d}" for n in range(1, 20)]
    + [f"HCI-{n:03d}" for n in range(1, 5)]
)
# concepts no rule mentions (a herb reviewed without a rule, a condition no rule names)
UNRELATED_HERB = "terminalia_arjuna"
UNRELATED_CONDITION = "epilepsy"


def run(
    medications: Iterable[str] = (),
    ayush: Iterable[str] = (),
    conditions: Iterable[str] = (),
    resolver: Any = RESOLVER,
) -> CheckResult:
    request = CheckRequest.model_validate(
        {
            "medications": [{"generic_name": m} for m in medications],
            "ayush_medications": [{"name": a} for a in ayush],
            "patient_conditions": list(conditions),
        }
    )
    return check(request, KB, resolver)


def fired(result: CheckResult) -> set[str]:
    return {f.rule_id for f in (*result.interactions, *result.contraindications)}


def findings(result: CheckResult, rule_id: str) -> list[Finding]:
    return [f for f in (*result.interactions, *result.contraindications) if f.rule_id == rule_id]


# ---------------------------------------------------------------------------------------------------------
# Building a request from a rule's own references
# ---------------------------------------------------------------------------------------------------------
def members(cls: str) -> list[str]:
    return sorted(d for d, classes in KB.compiled.drug_classes.items() if f"class:{cls}" in classes)


class Lines:
    def __init__(self) -> None:
        self.medications: list[str] = []
        self.ayush: list[str] = []
        self.conditions: list[str] = []

    def add(self, ref: str, *, member: int = 0) -> None:
        kind, _, value = ref.partition(":")
        if kind == "drug":
            self.medications.append(value)
        elif kind == "class":
            self.medications.append(members(value)[member])
        elif kind in ("herb", "formulation"):
            self.ayush.append(value)
        elif kind == "condition":
            self.conditions.append(value)
        elif ref == "same:ingredient":
            self.medications += ["warfarin", "warfarin"]
        else:  # pragma: no cover - the loader refuses other references
            raise AssertionError(ref)

    def run(self) -> CheckResult:
        return run(self.medications, self.ayush, self.conditions)


def own_cases() -> list[Any]:
    cases = []
    for rule in KB.rules:
        for a in rule.a:
            for b in rule.b:
                cases.append(pytest.param(rule, a, b, id=f"{rule.id}-{a}-{b}"))
    return cases


class TestEveryRule:
    @pytest.mark.parametrize(("rule", "a", "b"), own_cases())
    def test_rule_fires_for_its_own_items(self, rule: RuleSpec, a: str, b: str) -> None:
        lines = Lines()
        lines.add(a)
        if a == b and a.startswith("class:"):
            lines.add(b, member=1)  # same-class rules need two different members
        elif a != b:
            lines.add(b)
        for third in rule.also[:1]:
            lines.add(third, member=1 if third in (a, b) else 0)
        result = lines.run()
        assert rule.id in fired(result), (lines.medications, lines.ayush, lines.conditions)
        (finding,) = findings(result, rule.id)
        assert finding.source == rule.evidence
        assert finding.evidence_level == rule.evidence_level
        assert finding.severity == rule.severity
        assert finding.advice == rule.management
        assert not result.unknown_items

    @pytest.mark.parametrize("rule", KB.rules, ids=[r.id for r in KB.rules])
    def test_rule_does_not_fire_for_unrelated_partners(self, rule: RuleSpec) -> None:
        for side in (rule.a[0], rule.b[0]):
            lines = Lines()
            lines.add(side)
            lines.ayush.append(UNRELATED_HERB)
            lines.conditions.append(UNRELATED_CONDITION)
            if side == "same:ingredient":
                lines.medications = ["warfarin"]
            result = lines.run()
            assert rule.id not in fired(result)
            assert not result.unknown_items

    def test_every_seed_rule_is_kept_with_its_evidence(self) -> None:
        ids = {r.id for r in KB.rules}
        assert set(SEED_IDS) <= ids
        assert len(KB.rules) == 109
        assert all(r.evidence.strip() and r.evidence_level for r in KB.rules)
        assert KB.status == "draft"


# ---------------------------------------------------------------------------------------------------------
# Expansion
# ---------------------------------------------------------------------------------------------------------
def class_member_cases() -> list[Any]:
    return [
        pytest.param(cls, drug, id=f"{cls}-{drug}") for cls in sorted(KB.knowledge.classes) for drug in members(cls)
    ]


class TestExpansion:
    def test_a_rule_on_class_nsaid_fires_for_diclofenac(self) -> None:
        result = run(["diclofenac", "warfarin"])
        (finding,) = findings(result, "DDI-001")
        assert {i.matched_on for i in finding.items} == {("class:NSAID",), ("class:VKA",)}

    @pytest.mark.parametrize(("cls", "drug"), class_member_cases())
    def test_every_class_member_expands_to_its_class(self, cls: str, drug: str) -> None:
        assert f"class:{cls}" in KB.expand((f"drug:{drug}",)).keys

    def test_nested_classes_expand_transitively(self) -> None:
        # ACEI_OR_ARB = ACE_INHIBITOR + ARB; ramipril + pregnancy fires the ACEI_OR_ARB rule
        assert "DCI-007" in fired(run(["ramipril"], conditions=["pregnancy"]))

    def test_a_rule_on_herb_guggulu_fires_for_yogaraj_guggulu(self) -> None:
        result = run(["propranolol"], ["Yogaraj Guggulu"])
        (finding,) = findings(result, "DHI-005")
        ayush = [i for i in finding.items if i.kind == "ayush_medication"]
        assert ayush[0].matched_on == ("herb:commiphora_wightii",)

    def test_nested_formulations_expand(self) -> None:
        # Kaishore Guggulu contains Triphala Churna, which DHI-008 names; TRIPHALA is TRIPHALA_CHURNA
        assert "DHI-008" in fired(run(["tacrolimus"], ["Kaishore Guggulu"]))
        assert "DHI-008" in fired(run(["ciclosporin"], ["Triphala"]))

    def test_herb_aliases_in_sanskrit_hindi_and_english_resolve(self) -> None:
        for name in ("Yashtimadhu", "Mulethi", "licorice", "LIQUORICE"):
            assert "DHI-010" in fired(run(["furosemide"], [name])), name

    def test_a_combination_written_in_parts_matches_the_combination_rule(self) -> None:
        class Combo:
            def resolve(self, name: str) -> KnownName | None:
                parts = ("drug:sulfamethoxazole", "drug:trimethoprim")
                return KnownName("CO-TRIMOXAZOLE", parts) if name == "Septran" else RESOLVER.resolve(name)

        assert {"DDI-013", "DDI-025"} <= fired(run(["spironolactone", "methotrexate", "Septran"], resolver=Combo()))

    def test_a_combination_drug_splits_into_its_ingredients(self) -> None:
        # methotrexate + trimethoprim (DDI-025) also fires for co-trimoxazole, once per item pair
        result = run(["methotrexate", "co-trimoxazole"])
        assert len(findings(result, "DDI-025")) == 1

    def test_ingredients_of_one_fixed_dose_combination_never_pair_with_each_other(self) -> None:
        class Fdc:
            def resolve(self, name: str) -> KnownName | None:
                return KnownName("ATENOLOL + DILTIAZEM", ("drug:atenolol", "drug:diltiazem"))

        assert "DDI-036" not in fired(run(["fdc"], resolver=Fdc()))

    def test_triple_whammy_needs_the_third_drug(self) -> None:
        assert "DDI-011" not in fired(run(["ibuprofen", "telmisartan"]))
        assert "DDI-011" in fired(run(["ibuprofen", "telmisartan", "hydrochlorothiazide"]))

    def test_triple_whammy_third_drug_may_share_a_line_with_the_second(self) -> None:
        class TelmaH:
            def resolve(self, name: str) -> KnownName | None:
                if name == "Telma-H":
                    return KnownName("TELMISARTAN + HCTZ", ("drug:telmisartan", "drug:hydrochlorothiazide"))
                return RESOLVER.resolve(name)

        assert "DDI-011" in fired(run(["ibuprofen", "Telma-H"], resolver=TelmaH()))

    def test_same_class_rule_needs_two_different_members(self) -> None:
        assert "DDI-039" not in fired(run(["azithromycin", "azithromycin"]))
        assert "DDI-039" in fired(run(["azithromycin", "ondansetron"]))


# ---------------------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------------------
def code_cases() -> list[Any]:
    cases = []
    for cid, cond in KB.conditions.file.conditions.items():
        for ref in cond.snomed:
            for text in (ref.code, f"SNOMED:{ref.code}", f"http://snomed.info/sct|{ref.code}", f"sct {ref.code}"):
                cases.append(pytest.param(text, cid, id=f"{cid}-{text}"))
        for ref in cond.icd10:
            for text in (ref.code, f"ICD10:{ref.code}", ref.code.lower(), ref.code.replace(".", "")):
                cases.append(pytest.param(text, cid, id=f"{cid}-{text}"))
    return cases


class TestConditions:
    @pytest.mark.parametrize("cid", sorted(KB.conditions.file.conditions))
    def test_snake_case_ids_and_aliases_resolve(self, cid: str) -> None:
        cond = KB.conditions.file.conditions[cid]
        for text in (cid, cid.replace("_", " ").upper(), cond.label, *cond.aliases):
            assert KB.conditions.resolve(text).ids == (cid,), text

    @pytest.mark.parametrize(("text", "cid"), code_cases())
    def test_snomed_and_icd10_codes_resolve(self, text: str, cid: str) -> None:
        assert cid in KB.conditions.resolve(text).ids

    def test_an_icd10_subcode_matches_its_category(self) -> None:
        assert KB.conditions.resolve("E11.65").ids == ("type_2_diabetes",)
        assert KB.conditions.resolve("I50.9").ids == ("heart_failure",)

    def test_icd10_ckd_stage_4_is_both_ckd_and_egfr_below_30(self) -> None:
        assert set(KB.conditions.resolve("N18.4").ids) == {"chronic_kidney_disease", "egfr_lt_30"}
        assert "DCI-001" in fired(run(["metformin"], conditions=["N18.4"]))

    def test_condition_rules_fire_by_snomed_and_icd10(self) -> None:
        assert "DCI-006" in fired(run(["propranolol"], conditions=["195967001"]))
        assert "DCI-006" in fired(run(["propranolol"], conditions=["J45.9"]))
        assert "DCI-007" in fired(run(["losartan"], conditions=["SNOMED:77386006"]))

    def test_implied_conditions_fire_their_rules(self) -> None:
        assert "DCI-005" in fired(run(["naproxen"], conditions=["heart_failure_nyha_3_4"]))
        assert "DCI-019" in fired(run(["domperidone"], conditions=["I50"]))
        assert "HCI-001" in fired(run(ayush=["giloy"], conditions=["K75.4"]))

    def test_one_finding_lists_every_condition_that_triggers_the_rule(self) -> None:
        result = run(ayush=["mulethi"], conditions=["hypertension", "ckd", "heart failure"])
        (finding,) = findings(result, "HCI-002")
        assert [i.display_name for i in finding.items if i.kind == "condition"] == [
            "Chronic kidney disease",
            "Heart failure",
            "Hypertension",
        ]

    @pytest.mark.parametrize(
        ("text", "reason_part"),
        [
            ("99999999", "SNOMED CT concept 99999999"),
            ("Z99.9", "ICD-10 code Z99.9"),
            ("lumbago", "not a condition id"),
            ("   ", "empty"),
        ],
    )
    def test_unknown_conditions_are_reported(self, text: str, reason_part: str) -> None:
        result = run(conditions=[text])
        (unknown,) = result.unknown_items
        assert unknown.kind == "condition"
        assert reason_part in unknown.reason


# ---------------------------------------------------------------------------------------------------------
# Findings: dedup, duplicate therapy, ordering, unknown names, contract
# ---------------------------------------------------------------------------------------------------------
class TestFindings:
    def test_same_generic_twice_gives_one_finding_per_rule_listing_both_lines(self) -> None:
        result = run(["WARFARIN", "warfarin", "aspirin"])
        (ddi,) = findings(result, "DDI-002")
        assert sorted(i.name for i in ddi.items) == ["WARFARIN", "aspirin", "warfarin"]
        (dup,) = findings(result, "DUP-001")
        assert [i.index for i in dup.items] == [0, 1]

    def test_a_drug_and_a_combination_containing_it_are_duplicate_therapy(self) -> None:
        assert "DUP-001" in fired(run(["trimethoprim", "co-trimoxazole"]))

    @pytest.mark.parametrize(
        "rule", [r for r in KB.rules if r.kind == "duplicate-therapy" and r.a[0].startswith("class:")], ids=str
    )
    def test_duplicate_therapy_classes_are_the_listed_ones(self, rule: RuleSpec) -> None:
        assert rule.a == rule.b
        assert rule.a[0].removeprefix("class:") in KB.knowledge.classes

    def test_insulins_together_are_not_duplicate_therapy(self) -> None:
        assert not fired(run(["insulin glargine", "insulin aspart"]))

    def test_findings_are_ordered_by_severity(self) -> None:
        result = run(["clarithromycin", "simvastatin", "amlodipine", "aspirin", "ibuprofen", "warfarin"])
        ranks = [["contraindicated", "major", "moderate", "minor"].index(f.severity) for f in result.interactions]
        assert ranks == sorted(ranks)
        assert result.interactions[0].rule_id == "DDI-005"

    def test_unknown_names_are_reported_with_their_kind(self) -> None:
        result = run(["Metformin", "zzzmab"], ["Divya Mystery Vati"], ["hypertension", "?"])
        assert [(u.kind, u.index, u.name) for u in result.unknown_items] == [
            ("medication", 1, "zzzmab"),
            ("ayush_medication", 0, "Divya Mystery Vati"),
            ("condition", 1, "?"),
        ]

    def test_contract_example_answers_the_four_keys(self) -> None:
        body = {
            "medications": [
                {"generic_name": "METFORMIN", "strength": "1000mg", "frequency": "Twice daily", "duration_days": 30}
            ],
            "ayush_medications": [
                {"name": "Triphala Churna", "dose": "5g", "frequency": "Twice daily", "duration_days": 30}
            ],
            "patient_conditions": ["type_2_diabetes", "hypertension"],
        }
        result = check(CheckRequest.model_validate(body), KB, default_resolver())
        dumped = result.model_dump(mode="json")
        assert {"interactions", "contraindications", "safety_score", "unknown_items"} <= dumped.keys()
        assert dumped["unknown_items"] == []
        assert dumped["safety_score"] == 100
        body["medications"] += [  # type: ignore[operator]
            {"generic_name": "WARFARIN", "strength": "5mg", "frequency": "Once daily", "duration_days": 30},
            {"generic_name": "ASPIRIN", "strength": "75mg", "frequency": "Once daily", "duration_days": 30},
        ]
        result = check(CheckRequest.model_validate(body), KB, default_resolver())
        assert "major" in {f.severity for f in result.interactions}
        assert result.model_dump(mode="json")["interactions"][0]["rule_id"] == "DDI-002"

    def test_the_documented_examples_are_what_the_engine_answers(self) -> None:
        result = check(CheckRequest.model_validate(EXAMPLE_REQUEST), KB, default_resolver())
        assert result == CheckResult.model_validate(EXAMPLE_RESULT)

    def test_finding_carries_the_contract_fields(self) -> None:
        (finding,) = findings(run(["warfarin", "aspirin"]), "DDI-002")
        dumped = finding.model_dump()
        for key in ("severity", "items", "mechanism", "advice", "source", "rule_id"):
            assert dumped[key]
        assert finding.tier == "red"


# ---------------------------------------------------------------------------------------------------------
# Resolvers
# ---------------------------------------------------------------------------------------------------------
FORMULARY_YAML = """
schema: integmed-formulary
schema_version: 1
version: "0.0.1"
date: 2026-11-25
sources:
  t: {title: "test fixture"}
drugs:
  - generic: warfarin
    source: t
    brands: [{name: Warf, source: t}]
  - generic: amoxicillin + clavulanic acid
    ingredients: [amoxicillin, clavulanic acid]
    source: t
herbs:
  - key: glycyrrhiza_glabra
    latin: Glycyrrhiza glabra
    source: t
    sanskrit: [Yashtimadhu]
    hindi: [मुलेठी]
  - key: commiphora_wightii
    latin: Commiphora wightii
    source: t
    sanskrit: [Guggulu]
formulations:
  - key: YOGARAJ_GUGGULU
    name: Yogaraj Guggulu
    names: [योगराज गुग्गुलु]
    ingredients: [herb:commiphora_wightii]
    source: t
ambiguous:
  - name: ms
    meanings: [MORPHINE SULFATE, MAGNESIUM SULFATE]
    source: t
"""


class TestResolvers:
    def test_formulary_names_brands_and_devanagari_reach_the_rules(self) -> None:
        formulary = Formulary.from_texts([FORMULARY_YAML])
        resolver = ChainResolver(formulary, RESOLVER)
        result = run(["Warf", "aspirin", "furosemide", "propranolol"], ["मुलेठी", "योगराज गुग्गुलु"], resolver=resolver)
        assert {"DDI-002", "DHI-010", "DHI-005"} <= fired(result)
        assert not result.unknown_items

    def test_an_ambiguous_short_form_is_never_guessed_and_is_explained(self) -> None:
        class Anything:
            def resolve(self, name: str) -> KnownName | None:
                return KnownName("GUESS", ("drug:morphine",))

        resolver = ChainResolver(Formulary.from_texts([FORMULARY_YAML]), Anything())
        (unknown,) = run(["ms"], resolver=resolver).unknown_items
        assert "ambiguous" in unknown.reason
        assert "MORPHINE SULFATE" in unknown.reason

    def test_a_resolver_cannot_smuggle_in_a_condition_or_class(self) -> None:
        class Odd:
            def resolve(self, name: str) -> KnownName | None:
                return KnownName("ODD", ("condition:pregnancy", "class:NSAID")) if name == "odd" else None

        chain = ChainResolver(Odd(), RESOLVER)
        result = run(["odd", "warfarin", "losartan"], resolver=chain)
        assert not fired(result)
        assert not result.unknown_items

    def test_chain_resolver_asks_in_order(self) -> None:
        first = KnownName("FIRST", ("drug:warfarin",))

        class One:
            def resolve(self, name: str) -> KnownName | None:
                return first if name == "x" else None

        chain = ChainResolver(One(), RESOLVER)
        assert chain.resolve("x") is first
        assert chain.resolve("aspirin") == KnownName("ASPIRIN", ("drug:aspirin",))
        assert chain.resolve("nothing") is None

    def test_shipped_formulary_never_loses_a_rule_the_knowledge_base_would_fire(self) -> None:
        # for every name the knowledge base knows, the formulary's reading of it reaches the same rule keys
        formulary = Formulary.load_default()
        rule_keys = set(KB.compiled.rule_index)
        names = [
            *((g, f"drug:{g}") for g in KB.knowledge.drugs),
            *((k.replace("_", " "), f"herb:{k}") for k in KB.knowledge.herbs),
            *((a, f"herb:{k}") for k, h in KB.knowledge.herbs.items() for a in h.aliases),
            *((k.replace("_", " "), f"formulation:{k}") for k in KB.knowledge.formulations),
        ]
        lost = []
        for name, concept in names:
            hit = formulary.resolve(name)
            if hit is None:
                continue
            own = KB.expand((concept,)).keys.keys() & rule_keys
            via_formulary = KB.expand(tuple(hit.concepts)).keys.keys() & rule_keys
            if not own <= via_formulary:
                lost.append((name, hit.concepts, sorted(own - via_formulary)))
        assert not lost


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------
class TestBadInput:
    def test_empty_request_is_safe(self) -> None:
        result = check(CheckRequest(), KB, RESOLVER)
        assert result.safety_score == 100
        assert not (result.interactions or result.contraindications or result.unknown_items)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            " ",
            "x" * 10_240,
            "💊" * 3000,
            "warfarin\x00",
            "ワルファリン",
            "../../etc/passwd",
            "drug:warfarin",
            "E11" * 99,
        ],
        ids=["empty", "space", "10kB", "emoji", "nul", "japanese", "path", "concept", "codes"],
    )
    def test_odd_names_never_raise_and_are_reported(self, text: str) -> None:
        result = run([text], [text], [text])
        assert len(result.unknown_items) == 3
        assert all(len(u.name) <= 201 for u in result.unknown_items)

    def test_an_unpaired_surrogate_is_refused_by_the_model_or_reported(self) -> None:
        with pytest.raises(ValidationError):
            CheckRequest.model_validate({"medications": [{"generic_name": "\ud800"}]})
        (unknown,) = run(conditions=["\ud800"]).unknown_items
        assert unknown.kind == "condition"

    def test_extra_fields_are_forbidden(self) -> None:
        with pytest.raises(ValidationError):
            CheckRequest.model_validate({"medications": [], "patient": {"age": 70}})
        with pytest.raises(ValidationError):
            CheckRequest.model_validate({"medications": [{"generic_name": "x", "colour": "red"}]})

    def test_too_many_lines_are_refused_by_the_model(self) -> None:
        with pytest.raises(ValidationError):
            CheckRequest.model_validate({"patient_conditions": ["x"] * 201})


# ---------------------------------------------------------------------------------------------------------
# Properties: order and safety score
# ---------------------------------------------------------------------------------------------------------
DRUG_POOL = ["warfarin", "aspirin", "ibuprofen", "diclofenac", "telmisartan", "hydrochlorothiazide", "clarithromycin",
             "simvastatin", "co-trimoxazole", "trimethoprim", "propranolol", "digoxin", "nope", "WARFARIN"]  # fmt: skip
AYUSH_POOL = ["Yogaraj Guggulu", "mulethi", "Triphala", "karela", "giloy", "St John's wort", "unknown vati"]
CONDITION_POOL = ["pregnancy", "I50.9", "asthma", "N18.4", "age_65_plus", "hypertension", "xyz", "195967001"]


def normalised(result: CheckResult) -> tuple[Any, ...]:
    def finding(f: Finding) -> tuple[Any, ...]:
        return (f.rule_id, f.severity, tuple(sorted((i.kind, i.name, i.matched_on) for i in f.items)))

    return (
        sorted(finding(f) for f in result.interactions),
        sorted(finding(f) for f in result.contraindications),
        result.safety_score,
        sorted((u.kind, u.name, u.reason) for u in result.unknown_items),
    )


class TestProperties:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(st.sampled_from(DRUG_POOL), max_size=8).flatmap(lambda m: st.tuples(st.just(m), st.permutations(m))),
        st.lists(st.sampled_from(AYUSH_POOL), max_size=4).flatmap(lambda a: st.tuples(st.just(a), st.permutations(a))),
        st.lists(st.sampled_from(CONDITION_POOL), max_size=4).flatmap(
            lambda c: st.tuples(st.just(c), st.permutations(c))
        ),
    )
    def test_input_order_never_changes_the_result(
        self,
        meds: tuple[Sequence[str], Sequence[str]],
        ayush: tuple[Sequence[str], Sequence[str]],
        conds: tuple[Sequence[str], Sequence[str]],
    ) -> None:
        assert normalised(run(meds[0], ayush[0], conds[0])) == normalised(run(meds[1], ayush[1], conds[1]))

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.sampled_from(DRUG_POOL), max_size=6),
        st.lists(st.sampled_from(AYUSH_POOL), max_size=3),
        st.lists(st.sampled_from(CONDITION_POOL), max_size=3),
        st.sampled_from(DRUG_POOL + AYUSH_POOL),
    )
    def test_adding_an_item_never_raises_the_score(
        self, meds: list[str], ayush: list[str], conds: list[str], extra: str
    ) -> None:
        before = run(meds, ayush, conds)
        after = run([*meds, extra], ayush, conds)
        assert after.safety_score <= before.safety_score
        assert fired(before) <= fired(after)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.sampled_from(KB.rules), max_size=8),
        st.sampled_from(KB.rules),
        st.booleans(),
    )
    def test_adding_a_finding_never_raises_the_score(
        self, rules: list[RuleSpec], extra: RuleSpec, factor: bool
    ) -> None:
        def as_findings(rs: Iterable[RuleSpec]) -> list[Finding]:
            return [
                Finding(
                    rule_id=r.id,
                    kind=r.kind,
                    severity=r.severity,
                    tier=alert_tier(r.severity, r.evidence_level),
                    evidence_level=r.evidence_level,
                    items=(),
                    effect=r.effect,
                    mechanism=r.mechanism,
                    advice=r.management,
                    source=r.evidence,
                )
                for r in rs
            ]

        base = safety_score(as_findings(rules), patient_factor=factor)
        assert 0 <= safety_score(as_findings([*rules, extra]), patient_factor=factor) <= base
        assert safety_score(as_findings(rules), patient_factor=True) <= safety_score(as_findings(rules))


class TestSafetyScore:
    @pytest.mark.parametrize(
        ("medications", "conditions", "score"),
        [
            ([], [], 100),
            (["warfarin", "aspirin"], [], 60),  # one major A: R = 40
            (["warfarin", "aspirin"], ["age_65_plus"], 50),  # × 1.25
            (["simvastatin", "clarithromycin"], [], 0),  # contraindicated A: R = 100
            (["not a medicine"], [], 100),  # unknown names cost nothing (they are reported)
        ],
    )
    def test_documented_formula(self, medications: list[str], conditions: list[str], score: int) -> None:
        assert run(medications, conditions=conditions).safety_score == score

    def test_a_minor_level_d_finding_costs_one_point(self) -> None:
        result = run(["ciclosporin"], ["triphala churna"])
        assert [f.rule_id for f in result.interactions] == ["DHI-008"]
        assert result.safety_score == 99  # w = 2 × 0.4 = 0.8, ceil → 1

    def test_two_findings_combine_as_max_plus_a_quarter_of_the_rest(self) -> None:
        # DDI-002 major A (40) + DDI-034 moderate A (12): R = 40 + 3 = 43
        result = run(["warfarin", "aspirin", "ibuprofen"])
        assert {f.rule_id for f in result.interactions} == {"DDI-001", "DDI-002", "DDI-034"}
        # DDI-001 major A (40) too: R = 40 + 0.25 × (40 + 12) = 53
        assert result.safety_score == 47

    def test_five_items_raise_the_patient_factor(self) -> None:
        five = ["warfarin", "aspirin", "metformin", "atenolol", "amlodipine"]
        assert run(five).safety_score == 50

    @pytest.mark.parametrize(
        ("severity", "level", "tier"),
        [
            ("contraindicated", "D", "red"),
            ("major", "A", "red"),
            ("major", "B", "red"),
            ("major", "C", "amber"),
            ("moderate", "A", "amber"),
            ("minor", "A", "grey"),
        ],
    )
    def test_alert_tiers(self, severity: Any, level: Any, tier: str) -> None:
        assert alert_tier(severity, level) == tier


# ---------------------------------------------------------------------------------------------------------
# Knowledge validation
# ---------------------------------------------------------------------------------------------------------
def mutated(edit: Any) -> str:
    doc = yaml.safe_load(INTERACTIONS_TEXT)
    edit(doc)
    return str(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


def class_cycle(doc: dict[str, Any]) -> None:
    doc["classes"]["VKA"].append("class:ACEI_OR_ARB")
    doc["classes"]["ACEI_OR_ARB"].append("class:VKA")


def rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in doc["rules"] if r["id"] == rule_id)
    return found


class TestKnowledgeValidation:
    def test_shipped_files_load(self) -> None:
        kb = InteractionKB.from_texts(INTERACTIONS_TEXT, CONDITIONS_TEXT)
        assert kb.version == "0.2.0"
        assert len(kb.conditions.file.conditions) >= 21

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])), "duplicate rule id DHI-001"),
            (lambda d: rule(d, "DDI-002").pop("evidence"), "evidence"),
            (lambda d: rule(d, "DDI-002").update(evidence="  "), "evidence"),
            (lambda d: rule(d, "DDI-002").pop("evidence_level"), "evidence_level"),
            (lambda d: rule(d, "DDI-002").update(a="class:VKAA"), "unknown concept reference 'class:VKAA'"),
            (lambda d: rule(d, "DDI-002").update(b="drug:asprin"), "unknown concept reference 'drug:asprin'"),
            (lambda d: rule(d, "DHI-005").update(b="herb:guggul"), "unknown concept reference 'herb:guggul'"),
            (lambda d: rule(d, "DHI-008").update(b="formulation:X"), "unknown concept reference 'formulation:X'"),
            (lambda d: rule(d, "DCI-006").update(b="condition:asthmaa"), "unknown concept reference"),
            (lambda d: rule(d, "DCI-006").update(b="drug:warfarin"), "do not fit kind drug-condition"),
            (lambda d: rule(d, "DDI-002").update(severity="severe"), "severity"),
            (lambda d: d["classes"]["NSAID"].append("paracetamol"), "'paracetamol' is not in `drugs`"),
            (class_cycle, "contains itself"),
            (lambda d: d["formulations"]["TRIPHALA_CHURNA"].append("formulation:TRIPHALA"), "contains itself"),
            (lambda d: d.update(status="signed_off"), "sign_off"),
            (lambda d: d["drugs"].update(karela=[]), "belongs to both"),
        ],
        ids=[
            "dup-id",
            "no-evidence",
            "blank-evidence",
            "no-level",
            "class",
            "drug",
            "herb",
            "formulation",
            "condition",
            "kind",
            "severity",
            "member",
            "class-cycle",
            "formulation-cycle",
            "sign-off",
            "name-clash",
        ],
    )
    def test_bad_knowledge_is_refused(self, edit: Any, message: str) -> None:
        with pytest.raises(KnowledgeError, match=message):
            InteractionKB.from_texts(mutated(edit), CONDITIONS_TEXT)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda d: d["conditions"]["asthma"]["snomed"][0].update(code="84114007"), "belongs to both"),
            (lambda d: d["conditions"]["asthma"]["icd10"][0].update(sources=["nowhere"]), "unknown source"),
            (lambda d: d["conditions"]["asthma"]["icd10"][0].update(sources=[]), "sources"),
            (lambda d: d["conditions"]["asthma"].update(implies=["heart_failure"]), "implies_sources"),
            (lambda d: d["conditions"]["heart_failure"].update(implies=["heart_failure_nyha_3_4"]), "itself"),
            (lambda d: d["conditions"].pop("age_65_plus"), "age_65_plus"),
            (lambda d: d["conditions"].pop("asthma"), "unknown concept reference 'condition:asthma'"),
        ],
        ids=["snomed-twice", "unknown-source", "no-source", "implies-unsourced", "cycle", "score-condition", "missing"],
    )
    def test_bad_conditions_are_refused(self, edit: Any, message: str) -> None:
        doc = yaml.safe_load(CONDITIONS_TEXT)
        edit(doc)
        with pytest.raises(KnowledgeError, match=message):
            InteractionKB.from_texts(INTERACTIONS_TEXT, yaml.safe_dump(doc, allow_unicode=True))

    def test_bad_yaml_is_refused(self) -> None:
        with pytest.raises(KnowledgeError, match="not valid YAML"):
            InteractionKB.from_texts("rules: [", CONDITIONS_TEXT)
