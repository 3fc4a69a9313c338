"""Formulary loader and resolver: the shipped data validates, every fact is sourced, names never collide."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.rx.formulary import SCHEMA_VERSION, Drug, Formulary, FormularyError, Formulation, Herb, name_key

KNOWLEDGE = Path(__file__).parents[3] / "shared" / "knowledge" / "formulary"
FILES = sorted(KNOWLEDGE.glob("*.yaml"))


def _docs() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in FILES]


def _minimal(**drug: Any) -> dict[str, Any]:
    entry = {"generic": "metformin", "source": "s1", "presentations": [{"form": "tablet", "strengths": ["500mg"]}]}
    entry.update(drug)
    return {"schema": "integmed-formulary", "schema_version": 2, "version": "0.0.1", "date": "2026-11-25",
            "sources": {"s1": {"title": "t"}}, "drugs": [entry]}  # fmt: skip


class TestShippedData:
    def test_every_file_has_the_versioned_header(self) -> None:
        assert FILES
        for doc in _docs():
            assert doc["schema"] == "integmed-formulary"
            assert doc["schema_version"] == SCHEMA_VERSION == 2
            assert doc["version"].count(".") == 2
            assert doc["date"]
            assert doc["sources"]

    def test_every_source_id_used_in_a_file_is_defined_in_that_file(self) -> None:
        for path, doc in zip(FILES, _docs(), strict=True):
            defined = set(doc["sources"])
            used = {value for key, value in _walk(doc) if key in ("source", "nlem")}
            assert used <= defined, (path.name, used - defined)
            assert defined <= used | {"nlem2011"}, (path.name, "unused sources", defined - used)

    def test_every_entry_names_a_source(self) -> None:
        for entry in Formulary.load_default().entries:
            assert entry.source

    def test_no_name_maps_to_two_entries(self) -> None:
        seen: dict[str, str] = {}
        formulary = Formulary.load_default()
        for entry in formulary.entries:
            key = entry.generic if isinstance(entry, Drug) else entry.key
            for name in _names(entry):
                owner = seen.setdefault(name_key(name), key)
                assert owner == key, (name, owner, key)

    def test_every_formulation_ingredient_is_a_known_herb_or_formulation(self) -> None:
        formulary = Formulary.load_default()
        for entry in formulary.entries:
            if isinstance(entry, Formulation):
                for herb in formulary.expand_formulation(entry.key):
                    assert isinstance(formulary.get_entry(herb), Herb)

    def test_counts_reported_in_the_docs(self) -> None:
        entries = Formulary.load_default().entries
        drugs = [e for e in entries if isinstance(e, Drug)]
        assert len(drugs) >= 200
        assert len([e for e in entries if not isinstance(e, Drug)]) >= 60
        assert sum(len(d.brands) for d in drugs) >= 25
        assert sum(1 for d in drugs if d.schedule) >= 121
        assert sum(1 for d in drugs if d.rxnorm) >= 75


def _drugs() -> dict[str, Drug]:
    return {e.generic: e for e in Formulary.load_default().entries if isinstance(e, Drug)}


class TestSourcedFacts:
    """Version 0.2.0 facts: RxNorm ingredient codes, Drugs Rules schedules and Indian brands, each with its source."""

    RXNORM_SOURCES = frozenset({"clinical-rx", "rxnorm-cpic", "rxnorm-cpic-data", "rxnorm-vsac"})

    def test_every_rxnorm_code_is_an_ingredient_code_from_a_named_source(self) -> None:
        formulary = Formulary.load_default()
        for drug in _drugs().values():
            if drug.rxnorm is None:
                continue
            assert drug.rxnorm.code.isdigit() and not drug.rxnorm.code.startswith("0"), drug.generic
            assert drug.rxnorm.source in self.RXNORM_SOURCES, drug.generic
            assert drug.rxnorm.source in formulary.sources
            assert len(drug.ingredient_names) == 1, drug.generic

    def test_no_two_drugs_share_an_rxnorm_code(self) -> None:
        seen: dict[str, str] = {}
        for drug in _drugs().values():
            if drug.rxnorm is not None:
                owner = seen.setdefault(drug.rxnorm.code, drug.generic)
                assert owner == drug.generic, (drug.rxnorm.code, owner, drug.generic)

    @pytest.mark.parametrize(
        ("generic", "code", "source"),
        [
            ("metformin", "6809", "clinical-rx"),
            ("atorvastatin", "83367", "rxnorm-cpic"),
            ("pantoprazole", "40790", "rxnorm-cpic"),
            ("omeprazole", "7646", "rxnorm-cpic"),
            ("aspirin", "1191", "rxnorm-cpic"),
            ("clopidogrel", "32968", "rxnorm-cpic"),
            ("glimepiride", "25789", "rxnorm-cpic"),
            ("salbutamol", "435", "rxnorm-cpic"),
            ("ibuprofen", "5640", "rxnorm-cpic-data"),
            ("sodium valproate", "11118", "rxnorm-cpic-data"),
            ("telmisartan", "73494", "rxnorm-vsac"),
            ("losartan", "52175", "rxnorm-vsac"),
            ("atenolol", "1202", "rxnorm-vsac"),
            ("prasugrel", "613391", "rxnorm-vsac"),
        ],
    )
    def test_rxnorm_code_as_read_in_its_source(self, generic: str, code: str, source: str) -> None:
        rxnorm = _drugs()[generic].rxnorm
        assert rxnorm is not None
        assert (rxnorm.code, rxnorm.source) == (code, source)

    @pytest.mark.parametrize(
        "generic",
        # No citable ingredient RxCUI was found for these; an invented code must not slip in.
        [
            "amlodipine",
            "paracetamol",
            "amoxicillin",
            "azithromycin",
            "cetirizine",
            "levothyroxine",
            "fluticasone",
            "amoxicillin + clavulanic acid",
        ],
    )
    def test_no_rxnorm_code_without_a_citable_statement(self, generic: str) -> None:
        assert _drugs()[generic].rxnorm is None

    @pytest.mark.parametrize(
        ("brand", "generic", "source"),
        [
            ("Telma", "telmisartan", "docprime-telma"),
            ("amlong", "amlodipine", "boditreat-amlong"),
            ("PANTOCID", "pantoprazole", "drugsbanks-pantocid"),
            ("Eltroxin", "levothyroxine", "gsk-eltroxin"),
            ("Cetzine", "cetirizine", "rxreviewer-cetzine"),
            ("Dytor", "torsemide", "cipla-dytor"),
            ("Wysolone", "prednisolone", "pfizer-wysolone"),
            ("omez", "omeprazole", "retail-omez"),
            ("Asthalin", "salbutamol", "asthmacure-asthalin"),
            ("Meftal", "mefenamic acid", "bluecross-meftal"),
            ("Thyronorm", "levothyroxine", "abbott-thyronorm"),
            ("Ecosprin", "aspirin", "md-ecosprin"),
            ("Glycomet", "metformin", "retail-glycomet"),
            ("Calpol", "paracetamol", "deccanherald-dolo"),
        ],
    )
    def test_brand_resolves_to_its_generic_with_its_source(self, brand: str, generic: str, source: str) -> None:
        formulary = Formulary.load_default()
        hit = formulary.resolve(brand)
        assert hit is not None
        assert (hit.key, hit.matched_as) == (generic, "brand")
        drug = _drugs()[generic]
        assert {b.source for b in drug.brands if name_key(b.name) == name_key(brand)} == {source}
        assert hit.rxnorm_code == (drug.rxnorm.code if drug.rxnorm else None)

    def test_every_brand_resolves_to_the_drug_that_lists_it(self) -> None:
        formulary = Formulary.load_default()
        for drug in _drugs().values():
            for brand in drug.brands:
                hit = formulary.resolve(brand.name)
                assert hit is not None and hit.key == drug.generic, brand.name
                assert brand.source in formulary.sources

    def test_a_brand_prefix_never_suggests_the_brand(self) -> None:
        look = Formulary.load_default().lookup("pantoc")
        assert look.status == "unknown"
        assert look.candidates == ()

    @pytest.mark.parametrize(
        ("generic", "value", "source"),
        [
            ("pantoprazole", "H", "dcr-h-cdsco"),
            ("telmisartan", "H", "dcr-h-cdsco"),
            ("glimepiride", "H", "dcr-h-cdsco"),
            ("montelukast", "H", "dcr-h-cdsco"),
            ("clobetasol", "H", "dcr-h-cdsco"),  # topical steroids: note 4
            ("tobramycin", "H", "dcr-h-cdsco"),  # ophthalmic antibiotic: note 2
            ("telmisartan + amlodipine", "H", "dcr-h-cdsco"),
            ("amlodipine", "H", "dcr-h-medindia"),
            ("cefixime", "H1", "dcr-h1"),
            ("tramadol", "H1", "dcr-h1"),
        ],
    )
    def test_schedule_as_read_in_its_source(self, generic: str, value: str, source: str) -> None:
        schedule = _drugs()[generic].schedule
        assert schedule is not None
        assert (schedule.value, schedule.source) == (value, source)

    @pytest.mark.parametrize(
        "generic",
        # Not named in Schedule H/H1/X (metformin, paracetamol, rosuvastatin), omitted in 2010 (dextromethorphan),
        # only under a class entry (amoxicillin: "Antibiotics"; prednisolone: "Corticosteroids") or a topical
        # product outside note 2 (clotrimazole cream, timolol eye drops): left for a pharmacist, never guessed.
        [
            "metformin",
            "paracetamol",
            "rosuvastatin",
            "dextromethorphan",
            "amoxicillin",
            "prednisolone",
            "clotrimazole",
            "timolol",
        ],
    )
    def test_no_schedule_where_the_list_does_not_name_the_substance(self, generic: str) -> None:
        assert _drugs()[generic].schedule is None

    def test_a_combination_is_at_least_as_strict_as_its_scheduled_ingredients(self) -> None:
        rank = {None: 0, "OTC": 0, "H": 1, "H1": 2, "X": 3}
        drugs = _drugs()
        for drug in drugs.values():
            if len(drug.ingredient_names) < 2:
                continue
            parts = [drugs.get(name) for name in drug.ingredient_names]
            strictest = max(rank[p.schedule.value if p and p.schedule else None] for p in parts)
            assert rank[drug.schedule.value if drug.schedule else None] >= strictest, drug.generic

    def test_every_schedule_fact_names_a_defined_source(self) -> None:
        formulary = Formulary.load_default()
        for drug in _drugs().values():
            if drug.schedule is not None:
                assert drug.schedule.source in formulary.sources, drug.generic

    def test_brand_line_expands_to_the_generic_with_its_code(self) -> None:
        from shared.rx.shorthand import expand

        line = expand("Pantocid 40 od ac x 14d", Formulary.load_default())
        assert line.generic_name == "PANTOPRAZOLE"
        assert line.rxnorm_code == "40790"
        assert line.quantity == 14


class TestResolve:
    @pytest.mark.parametrize(
        ("name", "key", "matched_as"),
        [
            ("METFORMIN", "metformin", "generic"),
            ("  metformin ", "metformin", "generic"),
            ("Metf", "metformin", "alias"),
            ("Glycomet", "metformin", "brand"),
            ("PCM", "paracetamol", "abbreviation"),
            ("Dolo", "paracetamol", "brand"),
            ("Amoxicillin + Clavulanic acid", "amoxicillin + clavulanic acid", "generic"),
            ("ashwagandha", "withania_somnifera", "sanskrit"),
            ("अश्वगंधा", "withania_somnifera", "sanskrit"),
            ("Asgandh", "withania_somnifera", "hindi"),
            ("Withania somnifera", "withania_somnifera", "latin"),
            ("Emblica officinalis", "phyllanthus_emblica", "latin"),
            ("Liquorice root", "glycyrrhiza_glabra", "english"),
            ("गिलोय", "tinospora_cordifolia", "hindi"),
            ("Triphala Churna", "TRIPHALA_CHURNA", "name"),
            ("yograj guggul", "YOGARAJ_GUGGULU", "name"),
        ],
    )
    def test_resolves_every_kind_of_name(self, name: str, key: str, matched_as: str) -> None:
        hit = Formulary.load_default().resolve(name)
        assert hit is not None
        assert (hit.key, hit.matched_as) == (key, matched_as)

    def test_nfd_devanagari_resolves_like_nfc(self) -> None:
        import unicodedata

        assert Formulary.load_default().resolve(unicodedata.normalize("NFD", "त्रिफला चूर्ण")) is not None

    def test_formulation_expands_to_ingredient_herbs_through_nested_formulations(self) -> None:
        hit = Formulary.load_default().resolve("Kaishore Guggulu")
        assert hit is not None
        assert hit.formulations == ("KAISHORE_GUGGULU", "TRIPHALA_CHURNA")
        assert set(hit.herbs) >= {"commiphora_wightii", "tinospora_cordifolia", "terminalia_chebula"}
        assert "herb:terminalia_chebula" in hit.concepts

    def test_combination_lists_each_ingredient_as_a_drug_concept(self) -> None:
        hit = Formulary.load_default().resolve("Augmentin")
        assert hit is not None
        assert hit.concepts == ("drug:amoxicillin", "drug:clavulanic acid")

    def test_prefix_is_never_taken_as_the_name(self) -> None:
        formulary = Formulary.load_default()
        assert formulary.resolve("atorv") is None
        look = formulary.lookup("atorv")
        assert look.status == "unknown"
        assert look.candidates == ("ATORVASTATIN",)

    def test_prefix_of_several_names_is_ambiguous(self) -> None:
        look = Formulary.load_default().lookup("met")
        assert look.status == "ambiguous"
        assert "METFORMIN" in look.candidates and "METRONIDAZOLE" in look.candidates

    def test_declared_ambiguous_short_form_is_never_resolved(self) -> None:
        formulary = Formulary.load_default()
        assert formulary.resolve("MS") is None
        assert formulary.lookup("MS").status == "ambiguous"

    def test_find_by_generic_only_answers_for_generic_names(self) -> None:
        formulary = Formulary.load_default()
        drug = formulary.find_by_generic("Metformin")
        assert drug is not None and drug.generic == "metformin"
        assert formulary.find_by_generic("Glycomet") is None
        assert formulary.find_by_generic("nothing") is None

    def test_expand_formulation_refuses_a_herb_key(self) -> None:
        with pytest.raises(KeyError):
            Formulary.load_default().expand_formulation("withania_somnifera")

    def test_default_formulary_is_parsed_once(self) -> None:
        assert Formulary.load_default() is Formulary.load_default()


class TestLoaderRefuses:
    def test_unknown_source_id(self) -> None:
        with pytest.raises(FormularyError, match="unknown source id 'nope'"):
            Formulary.from_documents([_minimal(source="nope")])

    def test_unknown_brand_source_id(self) -> None:
        with pytest.raises(FormularyError, match="unknown source id"):
            Formulary.from_documents([_minimal(brands=[{"name": "Glycomet", "source": "nope"}])])

    def test_duplicate_entry(self) -> None:
        doc = _minimal()
        doc["drugs"].append(copy.deepcopy(doc["drugs"][0]))
        with pytest.raises(FormularyError, match="duplicate entry 'metformin'"):
            Formulary.from_documents([doc])

    def test_name_pointing_at_two_generics(self) -> None:
        doc = _minimal(brands=[{"name": "Twin", "source": "s1"}])
        doc["drugs"].append({"generic": "amlodipine", "source": "s1", "brands": [{"name": "TWIN", "source": "s1"}]})
        with pytest.raises(FormularyError, match="points at both"):
            Formulary.from_documents([doc])

    def test_alias_that_is_not_a_prefix_needs_a_source(self) -> None:
        with pytest.raises(FormularyError, match="not a ≥4-letter prefix"):
            Formulary.from_documents([_minimal(aliases=["glyco"])])

    def test_bad_strength_label(self) -> None:
        with pytest.raises(FormularyError, match="not like 500mg"):
            Formulary.from_documents([_minimal(presentations=[{"form": "tablet", "strengths": ["500 mg"]}])])

    def test_formulation_with_unknown_ingredient(self) -> None:
        doc = _minimal()
        doc["formulations"] = [{"key": "X_CHURNA", "name": "X Churna", "source": "s1", "ingredients": ["herb:no_such"]}]
        with pytest.raises(FormularyError, match="not in the formulary"):
            Formulary.from_documents([doc])

    def test_formulation_that_contains_itself(self) -> None:
        doc = _minimal()
        doc["formulations"] = [
            {"key": "A", "name": "A", "source": "s1", "ingredients": ["formulation:B"]},
            {"key": "B", "name": "B", "source": "s1", "ingredients": ["formulation:A"]},
        ]
        with pytest.raises(FormularyError, match="contains itself"):
            Formulary.from_documents([doc])

    def test_injection_without_route(self) -> None:
        with pytest.raises(FormularyError, match="does not imply a route"):
            Formulary.from_documents([_minimal(presentations=[{"form": "injection", "strengths": ["40mg"]}])])

    def test_rxnorm_code_on_a_combination(self) -> None:
        doc = _minimal(generic="a + b", ingredients=["a", "b"], rxnorm={"code": "1", "source": "s1"})
        with pytest.raises(FormularyError, match="single-ingredient"):
            Formulary.from_documents([doc])

    def test_source_defined_differently_in_two_files(self) -> None:
        other = _minimal(generic="amlodipine")
        other["sources"]["s1"] = {"title": "different"}
        with pytest.raises(FormularyError, match="defined differently"):
            Formulary.from_documents([_minimal(), other])

    def test_text_that_is_not_a_mapping(self) -> None:
        with pytest.raises(FormularyError, match="mapping"):
            Formulary.from_texts(["- a list"])

    def test_ambiguous_short_form_that_is_also_a_name(self) -> None:
        doc = _minimal()
        doc["ambiguous"] = [{"name": "metformin", "meanings": ["A", "B"], "source": "s1"}]
        with pytest.raises(FormularyError, match="also a name"):
            Formulary.from_documents([doc])


def _walk(node: object) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "sources":
                continue
            if isinstance(v, str):
                out.append((k, v))
            else:
                out.extend(_walk(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_walk(v))
    return out


def _names(entry: Drug | Herb | Formulation) -> list[str]:
    if isinstance(entry, Drug):
        return [entry.generic, *entry.aliases, *(a.name for a in entry.abbreviations), *(b.name for b in entry.brands)]
    if isinstance(entry, Herb):
        return [entry.latin, *entry.latin_synonyms, *entry.sanskrit, *entry.hindi, *entry.english, *entry.names]
    return [entry.name, *entry.names]
