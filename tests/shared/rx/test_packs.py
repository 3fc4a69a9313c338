"""Pack sizes: every shipped pack is sourced and sane, totals become whole packs, bad pack data is refused."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.rx.dispense import Dispense, packs_needed
from shared.rx.formulary import FORMS, PACK_UNITS, Drug, Formulary, FormularyError, Pack, Presentation, entry_key
from shared.rx.shorthand import ExpandedLine, expand

KNOWLEDGE = Path(__file__).parents[3] / "shared" / "knowledge" / "formulary"
FILES = sorted(KNOWLEDGE.glob("*.yaml"))
SEED_FIELDS = [
    "generic_name",
    "strength",
    "dosage_form",
    "route",
    "frequency",
    "duration_days",
    "quantity",
    "instructions",
    "rxnorm_code",
    "timing",
    "defaulted",
    "unresolved",
]


def _shipped_packs() -> list[tuple[str, str, Presentation, Pack]]:
    out = []
    for entry in Formulary.load_default().entries:
        for p in entry.presentations:
            out.extend((entry_key(entry), p.form, p, pack) for pack in p.packs)
    return out


PACKS = _shipped_packs()


@pytest.fixture(scope="module")
def formulary() -> Formulary:
    return Formulary.load_default()


# -- the shipped data ------------------------------------------------------------------------------------------
class TestShippedPacks:
    def test_the_files_are_version_2_and_carry_packs(self) -> None:
        docs = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in FILES]
        assert {d["schema_version"] for d in docs} == {2}
        assert len(PACKS) >= 411  # modern.yaml 0.3.0 (docs/shorthand.md)
        assert len({(k, f) for k, f, _, _ in PACKS}) >= 251

    @pytest.mark.parametrize(
        ("key", "form", "presentation", "pack"), PACKS, ids=[f"{k}-{f}-{p.size}{p.unit}" for k, f, _, p in PACKS]
    )
    def test_every_pack_is_positive_sourced_and_fits_its_presentation(
        self, key: str, form: str, presentation: Presentation, pack: Pack, formulary: Formulary
    ) -> None:
        assert pack.size > 0 and pack.size == pack.size.to_integral_value()
        assert pack.unit in PACK_UNITS[form]
        assert pack.source in formulary.sources, f"{key} {form}: pack source {pack.source!r} is not defined"
        assert pack.product and pack.product.startswith("PMBJP "), "a pack names the listed product it came from"
        labels = {s.label for s in presentation.strengths}
        assert pack.strengths and set(pack.strengths) <= labels
        # the listed product's unit size is quoted, and the pack repeats its number
        listed = pack.product.rsplit("(", 1)[1]
        assert str(int(pack.size)) in listed, (pack.product, pack.size)

    @pytest.mark.parametrize(
        ("key", "form", "strength", "size", "unit", "name"),
        [
            ("metformin", "tablet", "500mg", 10, "tablet", "pack"),  # PMBJP 145
            ("paracetamol", "tablet", "650mg", 15, "tablet", "pack"),  # PMBJP 511
            ("azithromycin", "tablet", "500mg", 3, "tablet", "pack"),  # PMBJP 72
            ("paracetamol", "suspension", "250mg/5mL", 60, "mL", "bottle"),  # PMBJP 712
            ("salbutamol", "inhaler", "100mcg", 200, "puff", "inhaler"),  # PMBJP 255, "200 md"
            ("insulin glargine", "injection", "100IU/mL", 3, "mL", "cartridge"),  # PMBJP 363
            ("levothyroxine", "tablet", "50mcg", 100, "tablet", "bottle"),  # PMBJP 1221, "100's in Bottle"
            ("clotrimazole", "cream", "1%", 15, "g", "tube"),  # PMBJP 87
        ],
    )
    def test_default_pack_as_read_in_the_source(
        self, key: str, form: str, strength: str, size: int, unit: str, name: str, formulary: Formulary
    ) -> None:
        entry = formulary.get_entry(key)
        [presentation] = [
            p for p in entry.presentations if p.form == form and strength in {s.label for s in p.strengths}
        ]
        pack = formulary.packs_for(key, presentation, strength)[0]
        assert (pack.size, pack.unit, pack.name, pack.source) == (size, unit, name, "pmbjp-2110")

    def test_no_pack_where_the_list_has_no_such_product(self, formulary: Formulary) -> None:
        metformin = formulary.get_entry("metformin")
        [ir_1000] = [p for p in metformin.presentations if p.source == "clinical-rx"]
        assert formulary.packs_for("metformin", ir_1000, "1000mg") == ()  # PMBJP lists 1000 mg only as SR
        amlodipine = formulary.get_entry("amlodipine").presentations[0]
        assert amlodipine.packs_for("2.5mg") == () and amlodipine.packs_for("5mg") and amlodipine.packs_for("10mg")

    def test_no_ayush_pack_without_a_source(self, formulary: Formulary) -> None:
        ayush = [e for e in formulary.entries if not isinstance(e, Drug)]
        assert ayush and all(not p.packs for e in ayush for p in e.presentations)  # none sourced yet (report)


# -- totals → packs --------------------------------------------------------------------------------------------
CASES: list[tuple[str, int | None, dict[str, Any], str]] = [
    # line, quantity (contract field, unchanged meaning), dispense fields, words in the note
    ("metf 500 bd x 30d", 60, {"packs": 6, "pack_size": 10, "unit": "tablet", "total_units": 60}, "= 6 packs of 10"),
    ("pan 40 od bbf x 14d", 14, {"packs": 2, "pack_size": 10, "total_units": 14}, "rounded up to whole packs"),
    ("azithro 500 od x 3d ac", 3, {"packs": 1, "pack_size": 3}, "3 tablets = 1 pack of 3 tablets"),
    ("augmentin 625 1-0-1 pc 5/7", 10, {"packs": 2, "pack_size": 6}, "(2 tablets over)"),
    ("pcm 650 sos max 4/d x 3d", 12, {"packs": 1, "pack_size": 15}, "as needed: counted at the most allowed (4 a day)"),
    ("amlo 5 od qty 30", 30, {"packs": 3, "pack_size": 10, "total_units": 30}, "30 tablets as typed"),
    ("prednisolone 10 2-0-0 x 5d then 1-0-0 x 5d", 15, {"packs": 2, "total_units": 15}, "taper: the sum of its 2"),
    ("metf 500 ½-0-½ x 15d", 15, {"packs": 2, "total_units": 15}, "15 tablets → 2 packs"),
    # liquids: total mL → bottles; `quantity` is the bottle count, as the contract documents it
    (
        "pcm susp 250 5ml tds x 5d",
        2,
        {"packs": 2, "pack_size": 60, "pack_name": "bottle", "unit": "mL", "total_units": 75},
        "75 mL → 2 bottles of 60 mL",
    ),
    ("cetirizine syp 5ml od x 5d", 1, {"packs": 1, "pack_size": 60, "total_units": 25}, "(35 mL over)"),
    ("cetirizine syp 2.5ml bd x 12d", 1, {"packs": 1, "total_units": 60}, "60 mL = 1 bottle of 60 mL"),
    ("azithro susp 5ml od x 3d", 1, {"packs": 1, "pack_size": 15, "total_units": 15}, "= 1 bottle of 15 mL"),
    # inhaler doses, insulin units through the cartridge's mL and the strength's IU/mL
    (
        "salbutamol inhaler 2 puffs qid x 30d",
        2,
        {"packs": 2, "pack_size": 200, "pack_name": "inhaler", "unit": "puff", "total_units": 240},
        "2 inhalers of 200 puffs",
    ),
    (
        "glargine 10u hs x 30d",
        1,
        {"packs": 1, "pack_size": 300, "pack_name": "cartridge", "unit": "IU"},
        "300 IU = 1 cartridge of 3 mL (300 IU)",
    ),
    ("glargine 12u hs x 30d", 2, {"packs": 2, "total_units": 360}, "(240 IU over)"),
    # typed quantity of a pack-dispensed form counts packs
    (
        "clobetasol cream bd x 7d qty 1",
        1,
        {"packs": 1, "pack_size": 15, "unit": "g", "total_units": 15},
        "1 tube of 15 g as typed",
    ),
    # no pack count, with the reason
    ("Metf 1000 bd 30d", 60, {"packs": None, "total_units": 60}, "no pack size for METFORMIN 1000mg tablet"),
    (
        "triphala churna 5g hs with warm water x 30d",
        150,
        {"packs": None, "unit": "g", "total_units": 150},
        "no pack size for TRIPHALA CHURNA churna",
    ),
    ("pcm 250 syp 10ml sos x 5d", None, {"packs": None, "total_units": None}, "no pack count: as needed without"),
    ("glargine 10u hs", None, {"packs": None}, "no pack count: no duration"),
    ("timolol eye drops 1 drop bd x 30d", None, {"packs": None}, "not counted from the dose"),
]


@pytest.mark.parametrize(("line", "quantity", "fields", "note"), CASES, ids=[c[0] for c in CASES])
def test_quantity_to_packs(
    line: str, quantity: int | None, fields: dict[str, Any], note: str, formulary: Formulary
) -> None:
    result = expand(line, formulary)
    assert result.quantity == quantity, result
    assert result.dispense is not None
    body = result.dispense.model_dump()
    for key, want in fields.items():
        assert body[key] == want, f"{key}: {body}"
    assert note in result.dispense.note, result.dispense.note


def test_the_seed_example_keeps_its_contract_and_adds_dispense(formulary: Formulary) -> None:
    body = expand("Metf 1000 bd 30d", formulary).model_dump(mode="json")
    assert list(body) == [*SEED_FIELDS, "dispense"]
    assert (body["generic_name"], body["quantity"], body["unresolved"]) == ("METFORMIN", 60, [])
    assert set(body["dispense"]) == {"packs", "pack_size", "pack_name", "unit", "total_units", "note"}


def test_a_line_without_a_medicine_has_no_dispense(formulary: Formulary) -> None:
    assert expand("xyzzy bd x 5d", formulary).dispense is None
    assert expand("", formulary).dispense is None


def test_short_form_for_display(formulary: Formulary) -> None:
    assert expand("metf 500 bd x 30d", formulary).dispense == Dispense(
        packs=6,
        pack_size=10,
        pack_name="pack",
        unit="tablet",
        total_units=60,
        note="60 tablets = 6 packs of 10 tablets",
    )
    dispense = expand("pcm susp 250 5ml tds x 5d", formulary).dispense
    assert dispense is not None and dispense.short == "2 bottles of 60 mL"
    none = expand("Metf 1000 bd 30d", formulary).dispense
    assert none is not None and none.short is None


# -- rounding properties -----------------------------------------------------------------------------------------
_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_DECIMALS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100000), places=2)


@_FAST
@given(_DECIMALS, _DECIMALS)
def test_packs_hold_the_total_and_one_pack_less_would_not(total: Decimal, size: Decimal) -> None:
    packs = packs_needed(total, size)
    assert packs * size >= total
    assert (packs - 1) * size < total


@pytest.mark.parametrize(("total", "size"), [(Decimal(0), Decimal(10)), (Decimal(5), Decimal(0)), (Decimal(-1), 1)])
def test_packs_needed_refuses_what_is_not_positive(total: Decimal, size: Decimal) -> None:
    with pytest.raises(ValueError, match="positive"):
        packs_needed(total, Decimal(size))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["metf 500", "pan 40", "augmentin 625", "pcm 650", "azithro 500", "atorva 10"]),
    st.sampled_from(["od", "bd", "tds", "1-0-1", "½-0-½", "2-0-1", "qod", "weekly"]),
    st.integers(min_value=1, max_value=366),
)
def test_expanded_packs_round_up_once(name: str, schedule: str, days: int) -> None:
    result: ExpandedLine = expand(f"{name} {schedule} x {days}d", Formulary.load_default())
    d = result.dispense
    assert d is not None and result.quantity is not None and d.packs is not None and d.pack_size is not None
    assert d.total_units == result.quantity  # tablets: the contract's quantity is the total
    assert d.packs * d.pack_size >= d.total_units
    assert (d.packs - 1) * d.pack_size < d.total_units


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["2.5", "5", "7.5", "10", "15"]),
    st.sampled_from(["od", "bd", "tds", "qid"]),
    st.integers(min_value=1, max_value=60),
)
def test_liquid_packs_round_up_once(dose: str, frequency: str, days: int) -> None:
    result = expand(f"pcm susp 250 {dose}ml {frequency} x {days}d", Formulary.load_default())
    d = result.dispense
    assert d is not None and d.packs is not None and d.pack_size == 60 and d.total_units is not None
    per_day = {"od": 1, "bd": 2, "tds": 3, "qid": 4}[frequency]
    assert d.total_units == pytest.approx(float(Decimal(dose) * per_day * days))
    assert result.quantity == d.packs == math.ceil(Decimal(dose) * per_day * days / 60)
    assert d.packs * d.pack_size >= d.total_units > (d.packs - 1) * d.pack_size


# -- brands carry their own packs ---------------------------------------------------------------------------------
def _doc(**drug: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "generic": "metformin",
        "source": "s1",
        "presentations": [
            {
                "form": "tablet",
                "strengths": ["500mg", "850mg"],
                "packs": [{"strengths": ["500mg"], "size": 10, "unit": "tablet", "name": "pack", "source": "s1"}],
            }
        ],
    }
    entry.update(drug)
    return {
        "schema": "integmed-formulary",
        "schema_version": 2,
        "version": "0.0.1",
        "date": "2026-11-26",
        "sources": {"s1": {"title": "t"}, "s2": {"title": "brand pack"}},
        "drugs": [entry],
    }


def test_a_brand_named_on_the_line_uses_its_own_pack() -> None:
    brand = {
        "name": "Glycomet",
        "source": "s1",
        "packs": [
            {"form": "tablet", "strengths": ["500mg"], "size": 15, "unit": "tablet", "name": "strip", "source": "s2"}
        ],
    }
    formulary = Formulary.from_documents([_doc(brands=[brand])])
    branded = expand("glycomet 500 bd x 30d", formulary).dispense
    generic = expand("metformin 500 bd x 30d", formulary).dispense
    assert branded is not None and (branded.packs, branded.pack_size, branded.pack_name) == (4, 15, "strip")
    assert generic is not None and (generic.packs, generic.pack_size, generic.pack_name) == (6, 10, "pack")
    other = expand("glycomet 850 bd x 30d", formulary).dispense  # the brand pack is for 500 mg only
    assert other is not None and other.packs is None


# -- bad pack data: a clear load error ------------------------------------------------------------------------------
def _with_pack(**pack: Any) -> dict[str, Any]:
    good = {"strengths": ["500mg"], "size": 10, "unit": "tablet", "name": "pack", "source": "s1"}
    good.update(pack)
    return _doc(presentations=[{"form": "tablet", "strengths": ["500mg"], "packs": [good]}])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_with_pack(size=0), "size\n  Input should be greater than 0"),
        (_with_pack(size=-10), "greater than 0"),
        (_with_pack(size="ten"), "size"),
        (_with_pack(size=".nan"), "size"),
        (_with_pack(unit="mL"), "a tablet pack cannot be counted in 'mL'; use tablet"),
        (_with_pack(unit="puff"), "cannot be counted in 'puff'"),
        (_with_pack(strengths=["1000mg"]), "names strength(s) ['1000mg'] that the tablet does not list"),
        (_with_pack(source="nope"), "metformin tablet pack 10 tablet: unknown source id 'nope'"),
        (_with_pack(colour="red"), "colour\n  Extra inputs are not permitted"),
        (_with_pack(source=None), "source"),
        (_with_pack(name=""), "name"),
        (_doc(presentations=[{"form": "syrup", "strengths": ["125mg/5mL"], "pack": {"size": 60}}]), "pack\n  Extra"),
        (
            _doc(
                presentations=[
                    {"form": "churna", "packs": [{"size": 100, "unit": "tablet", "name": "jar", "source": "s1"}]}
                ]
            ),
            "a churna pack cannot be counted in 'tablet'; use g",
        ),
        (
            _doc(
                presentations=[
                    {
                        "form": "injection",
                        "route": "subcutaneous",
                        "strengths": ["100IU/mL"],
                        "packs": [{"size": 300, "unit": "IU", "name": "pen", "source": "s1"}],
                    }
                ]
            ),
            "a pack in IU needs doses in IU",
        ),
        (
            _doc(
                brands=[
                    {
                        "name": "Glycomet",
                        "source": "s1",
                        "packs": [{"form": "syrup", "size": 100, "unit": "mL", "name": "bottle", "source": "s2"}],
                    }
                ]
            ),
            "brand 'Glycomet' pack 100 mL: metformin has no syrup presentation",
        ),
        (
            _doc(
                brands=[
                    {
                        "name": "Glycomet",
                        "source": "s1",
                        "packs": [{"form": "tablet", "size": 15, "unit": "mL", "name": "strip", "source": "s2"}],
                    }
                ]
            ),
            "cannot be counted in 'mL'",
        ),
        (
            _doc(
                abbreviations=[
                    {
                        "name": "mtf",
                        "source": "s1",
                        "packs": [{"form": "tablet", "size": 15, "unit": "tablet", "name": "strip", "source": "s1"}],
                    }
                ]
            ),
            "short form 'mtf' cannot carry packs",
        ),
        ({**_with_pack(), "schema_version": 1}, "pack sizes (`packs:`) need schema_version 2"),
        ({**_with_pack(), "schema_version": 3}, "schema_version"),
    ],
    ids=[
        "zero",
        "negative",
        "text",
        "nan",
        "tablet-in-mL",
        "tablet-in-puffs",
        "unknown-strength",
        "unknown-source",
        "unknown-key",
        "no-source",
        "no-name",
        "old-single-pack-key",
        "churna-in-tablets",
        "IU-pack-mL-doses",
        "brand-form-missing",
        "brand-unit",
        "abbreviation-pack",
        "packs-in-v1",
        "future-version",
    ],
)
def test_bad_pack_data_is_a_clear_load_error(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(FormularyError) as info:
        Formulary.from_documents([doc])
    assert message in str(info.value)


def test_every_form_has_pack_units() -> None:
    assert set(PACK_UNITS) == set(FORMS)
