"""Clinic formulary: versioned YAML knowledge files → validated, indexed lookup of medicines by any name.

The files live in `shared/knowledge/formulary/*.yaml`. Each file has a header (`schema`, `schema_version`,
`version`, `date`), a `sources:` table keyed by short ids, and any of `drugs:`, `herbs:`, `formulations:`
and `ambiguous:`. Every entry names a source id; facts that its main source does not carry (drug schedule,
RxNorm code, default timing, brand names, short forms that are not a prefix of the name) carry their own.
The loader refuses unknown source ids, duplicate entries and a name that would point at two entries, so a
lookup never has to choose.

Public API (stable; the interaction engine calls `resolve`):

    formulary = Formulary.load_default()          # parsed once per process
    hit = formulary.resolve("Glycomet")           # Resolved | None
    hit.key, hit.display_name, hit.concepts       # "metformin", "METFORMIN", ("drug:metformin",)
    formulary.lookup("met")                       # NameLookup: found / ambiguous (with candidates) / unknown
    formulary.find_by_generic("metformin")        # Drug | None
    formulary.expand_formulation("TRIPHALA_GUGGULU")  # herb keys, nested formulations expanded
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Literal, TypeAlias

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA = "integmed-formulary"
SCHEMA_VERSION = 2
"""Version 2 added pack sizes (`packs:` on presentations and brands)."""

Route: TypeAlias = Literal[
    "oral", "sublingual", "intravenous", "intramuscular", "subcutaneous", "topical", "inhalation", "rectal",
    "vaginal", "ophthalmic", "otic", "nasal",
]  # fmt: skip
Dispense: TypeAlias = Literal["count", "mass", "pack", "typed"]
"""How a quantity is counted: units (tablets), grams, whole packs from a pack size, or only when typed."""

FormName: TypeAlias = Literal[
    "tablet", "tablet_mr", "capsule", "sachet", "syrup", "suspension", "oral_drops", "eye_drops", "ear_drops",
    "nasal_spray", "injection", "ointment", "cream", "gel", "inhaler", "suppository", "churna", "vati",
    "kashayam", "asava_arishta", "taila", "ghrita", "avaleha", "bhasma",
]  # fmt: skip
EventCode: TypeAlias = Literal[
    "MORN", "NOON", "AFT", "EVE", "NIGHT", "HS", "WAKE", "C", "CM", "CD", "CV",
    "AC", "ACM", "ACD", "ACV", "PC", "PCM", "PCD", "PCV",
]  # fmt: skip
ScheduleClass: TypeAlias = Literal["H", "H1", "X", "OTC"]
System: TypeAlias = Literal["modern", "ayurveda"]
Kind: TypeAlias = Literal["drug", "herb", "formulation"]


class FormInfo(BaseModel):
    """Grammar facts about a dosage form (not about any medicine).

    Args:
        label: the printed name of the form ("tablet", "churna").
        dose_unit: the unit a dose of this form is counted in ("tablet", "g", "mL", "puff").
        dispense: how the quantity is counted (see `Dispense`).
        route: the route implied by the form, or None when the form does not fix it (injections).
    """

    model_config = ConfigDict(frozen=True)

    label: str
    dose_unit: str
    dispense: Dispense
    route: Route | None


FORMS: Mapping[str, FormInfo] = {
    "tablet": FormInfo(label="tablet", dose_unit="tablet", dispense="count", route="oral"),
    "tablet_mr": FormInfo(label="modified-release tablet", dose_unit="tablet", dispense="count", route="oral"),
    "capsule": FormInfo(label="capsule", dose_unit="capsule", dispense="count", route="oral"),
    "sachet": FormInfo(label="sachet", dose_unit="sachet", dispense="count", route="oral"),
    "syrup": FormInfo(label="syrup", dose_unit="mL", dispense="pack", route="oral"),
    "suspension": FormInfo(label="suspension", dose_unit="mL", dispense="pack", route="oral"),
    "oral_drops": FormInfo(label="oral drops", dose_unit="mL", dispense="pack", route="oral"),
    "eye_drops": FormInfo(label="eye drops", dose_unit="drop", dispense="typed", route="ophthalmic"),
    "ear_drops": FormInfo(label="ear drops", dose_unit="drop", dispense="typed", route="otic"),
    "nasal_spray": FormInfo(label="nasal spray", dose_unit="spray", dispense="typed", route="nasal"),
    "injection": FormInfo(label="injection", dose_unit="mL", dispense="typed", route=None),
    "ointment": FormInfo(label="ointment", dose_unit="application", dispense="typed", route="topical"),
    "cream": FormInfo(label="cream", dose_unit="application", dispense="typed", route="topical"),
    "gel": FormInfo(label="gel", dose_unit="application", dispense="typed", route="topical"),
    "inhaler": FormInfo(label="inhaler", dose_unit="puff", dispense="pack", route="inhalation"),
    "suppository": FormInfo(label="suppository", dose_unit="suppository", dispense="count", route="rectal"),
    "churna": FormInfo(label="churna", dose_unit="g", dispense="mass", route="oral"),
    "vati": FormInfo(label="vati", dose_unit="tablet", dispense="count", route="oral"),
    "kashayam": FormInfo(label="kashayam", dose_unit="mL", dispense="pack", route="oral"),
    "asava_arishta": FormInfo(label="asava/arishta", dose_unit="mL", dispense="pack", route="oral"),
    "taila": FormInfo(label="taila", dose_unit="mL", dispense="typed", route=None),
    "ghrita": FormInfo(label="ghrita", dose_unit="g", dispense="mass", route="oral"),
    "avaleha": FormInfo(label="avaleha", dose_unit="g", dispense="mass", route="oral"),
    "bhasma": FormInfo(label="bhasma", dose_unit="g", dispense="mass", route="oral"),
}
"""Every dosage form the formulary and the shorthand grammar know, keyed by `FormName`."""

_STRENGTH_PART = re.compile(r"^(\d+(?:\.\d+)?)(mg|g|mcg|IU|mL|%)$")
_PER_PART = re.compile(r"^(\d+(?:\.\d+)?)?(mL|g)$")
_NAME_JUNK = re.compile(r"[\s\-_.,'’()/+&\u200c\u200d]+")


class FormularyError(ValueError):
    """A knowledge file is malformed: bad schema, unknown source id, duplicate entry or clashing name."""


def name_key(text: str) -> str:
    """Normalise a medicine name for lookup: NFKC, case-folded, without spaces or punctuation.

    "Co-Trimoxazole", "co trimoxazole" and "COTRIMOXAZOLE" share one key, as do an NFD- and an NFC-typed
    Devanagari name.

    Args:
        text: a name as typed or as written in a knowledge file.

    Returns:
        The lookup key ("" when nothing but punctuation was given).
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFC", _NAME_JUNK.sub("", folded))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    """One bibliography entry of a knowledge file.

    Args:
        title: what the source is (publication, list, label), enough to find it again.
        publisher: who issued it.
        url: where it was read, when it has an address.
        date: publication or access date as written by the source.
        notes: caveats (secondary source, parts only, to be verified).
    """

    title: str
    publisher: str | None = None
    url: str | None = None
    date: str | None = None
    notes: str | None = None


class Strength(_Frozen):
    """A strength as printed ("500mg", "500mg+125mg", "125mg/5mL", "100IU/mL").

    Args:
        label: the printed strength (no spaces, units mg g mcg IU mL %).
        typed: extra ways a doctor types it ("625" for 500mg+125mg, "60k" for 60000IU); the numbers of the
            label joined by "/" ("500/125", "125/5") and the first number ("500") are always accepted.
    """

    label: str
    typed: tuple[str, ...] = ()

    @field_validator("label")
    @classmethod
    def _check_label(cls, value: str) -> str:
        parts = value.split("/")
        amounts_ok = all(_STRENGTH_PART.match(p) for p in parts[0].split("+"))
        per_ok = len(parts) == 1 or (len(parts) == 2 and _PER_PART.match(parts[1]) is not None)
        if not (amounts_ok and per_ok):
            raise ValueError(f"strength {value!r} is not like 500mg, 500mg+125mg or 125mg/5mL")
        return value

    @property
    def amounts(self) -> tuple[tuple[Decimal, str], ...]:
        """The active amounts, e.g. ((500, "mg"), (125, "mg")); the per-volume part is left out."""
        return tuple(_split_part(p) for p in self.label.split("/")[0].split("+"))

    @property
    def per(self) -> tuple[Decimal, str] | None:
        """The volume the amounts are in ((5, "mL") for 125mg/5mL), or None for a solid."""
        parts = self.label.split("/")
        if len(parts) != 2:
            return None
        match = _PER_PART.match(parts[1])
        if match is None:  # pragma: no cover - labels are validated on load
            raise ValueError(parts[1])
        return Decimal(match.group(1) or 1), match.group(2)

    def typed_keys(self) -> tuple[str, ...]:
        """Every number string that selects this strength ("500", "500/125", "625"), normalised."""
        return _typed_keys(self.label, self.typed)


@functools.lru_cache(maxsize=4096)
def _typed_keys(label: str, typed: tuple[str, ...]) -> tuple[str, ...]:
    parts = label.split("/")
    numbers = [_plain(_split_part(p)[0]) for p in parts[0].split("+")]
    keys = {numbers[0], "/".join(numbers)}
    if len(parts) == 2:
        match = _PER_PART.match(parts[1])
        if match is not None:
            keys.add(f"{numbers[0]}/{_plain(Decimal(match.group(1) or 1))}")
    keys.update(t.casefold() for t in typed)
    return tuple(sorted(keys))


def _split_part(part: str) -> tuple[Decimal, str]:
    match = _STRENGTH_PART.match(part)
    if match is None:  # pragma: no cover - labels are validated on load
        raise ValueError(part)
    return Decimal(match.group(1)), match.group(2)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


PACK_UNITS: Mapping[str, frozenset[str]] = {
    **{f: frozenset({FORMS[f].dose_unit}) for f in ("tablet", "tablet_mr", "capsule", "sachet", "suppository", "vati")},
    **{f: frozenset({"mL"}) for f in ("syrup", "suspension", "oral_drops", "kashayam", "asava_arishta", "taila")},
    **{f: frozenset({"mL"}) for f in ("eye_drops", "ear_drops")},
    "nasal_spray": frozenset({"spray", "mL"}),
    "inhaler": frozenset({"puff"}),
    "injection": frozenset({"mL", "IU"}),
    **{f: frozenset({"g"}) for f in ("ointment", "cream", "gel", "churna", "ghrita", "avaleha", "bhasma")},
}
"""The units a pack of each form may be counted in (a strip counts tablets, a bottle mL, an inhaler puffs)."""


class Pack(_Frozen):
    """A pack a presentation is dispensed in (a strip of 10 tablets, a 60 mL bottle, a 200-dose inhaler).

    Args:
        size: content of one pack in `unit` (10 for a strip of 10, 60 for a 60 mL bottle, 3 for a 3 mL cartridge).
        unit: what the size counts; one of `PACK_UNITS` for the form ("tablet", "mL", "puff", "g", "IU").
        name: the pack's printed name ("strip", "bottle", "inhaler", "cartridge", "jar").
        strengths: the strength labels the pack is listed for; empty = every strength of the presentation.
        source: source id of the pack fact (required: a pack size is a fact of its own).
        product: the product as the source lists it, so the fact can be found again.
    """

    size: Decimal = Field(gt=0, allow_inf_nan=False)
    unit: str
    name: str = Field(min_length=1)
    strengths: tuple[str, ...] = ()
    source: str
    product: str | None = None

    def fits(self, strength: str | None) -> bool:
        """True when the pack is listed for `strength` (a pack without strengths fits every strength)."""
        return not self.strengths or strength in self.strengths


class BrandPack(Pack):
    """A pack sold under a brand name, for one form of the drug.

    Args:
        form: the dosage form of the branded product (must be one of the drug's presentations).
    """

    form: FormName


class Presentation(_Frozen):
    """One dosage form of a medicine with the strengths it comes in.

    Args:
        form: the dosage form.
        strengths: strengths available in this form (empty for most AYUSH items).
        dose_unit: overrides the form's dose unit (insulin doses are in IU, not mL).
        packs: the packs it is dispensed in; for a strength the first pack listed for it is the default.
        route: overrides the route implied by the form (required for injections).
        source: source id when not the entry's own source.
    """

    form: FormName
    strengths: tuple[Strength, ...] = ()
    dose_unit: str | None = None
    packs: tuple[Pack, ...] = ()
    route: Route | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _check_packs(self) -> Presentation:
        labels = {s.label for s in self.strengths}
        allowed = PACK_UNITS[self.form]
        for pack in self.packs:
            if pack.unit not in allowed:
                units = _or_list(sorted(allowed))
                raise ValueError(f"a {FORMS[self.form].label} pack cannot be counted in {pack.unit!r}; use {units}")
            if pack.unit == "IU" and self.effective_dose_unit != "IU":
                raise ValueError(f"a pack in IU needs doses in IU (dose_unit: IU), not {self.effective_dose_unit}")
            unknown = [s for s in pack.strengths if s not in labels]
            if unknown:
                raise ValueError(f"pack {pack.name} of {pack.size} {pack.unit} names strength(s) {unknown} that the "
                                 f"{FORMS[self.form].label} does not list ({sorted(labels)})")  # fmt: skip
        return self

    def packs_for(self, strength: str | None) -> tuple[Pack, ...]:
        """The packs listed for `strength` (the default first)."""
        return tuple(p for p in self.packs if p.fits(strength))

    @field_validator("strengths", mode="before")
    @classmethod
    def _strings_to_strengths(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return [{"label": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def effective_route(self) -> Route | None:
        """The route written on the presentation, else the route its form implies."""
        return self.route or FORMS[self.form].route

    @property
    def effective_dose_unit(self) -> str:
        """The unit one dose is counted in."""
        return self.dose_unit or FORMS[self.form].dose_unit


class SourcedName(_Frozen):
    """A name that needs its own source (a brand, or a short form that is not a prefix of the name).

    Args:
        name: the name as written.
        source: source id.
        manufacturer: for brands, the marketing company.
        packs: for brands, the brand's own packs (each with its form and source); preferred over the generic
            packs when the line names the brand.
    """

    name: str
    source: str
    manufacturer: str | None = None
    packs: tuple[BrandPack, ...] = ()


class ScheduleFact(_Frozen):
    """Drugs Rules, 1945 schedule of a drug ("OTC" = in none of Schedules H, H1 or X).

    Args:
        value: H, H1, X or OTC.
        source: source id.
    """

    value: ScheduleClass
    source: str


class CodeFact(_Frozen):
    """A code with the source it was checked against.

    Args:
        code: the code (an RxNorm ingredient RxCUI).
        source: source id.
    """

    code: str = Field(pattern=r"^\d{1,9}$")
    source: str


class TimingDefault(_Frozen):
    """Default administration timing for a medicine (e.g. metformin after meals).

    Args:
        when: FHIR EventTiming codes.
        source: source id.
    """

    when: tuple[EventCode, ...]
    source: str


class _Entry(_Frozen):
    source: str
    presentations: tuple[Presentation, ...] = ()
    timing: TimingDefault | None = None
    notes: str | None = None


class Drug(_Entry):
    """A modern (allopathic) medicine: one molecule or a fixed-dose combination.

    Args:
        generic: INN in lower case ("metformin", "amoxicillin + clavulanic acid"); printed upper case.
        ingredients: generic names of the ingredients; defaults to the generic itself.
        aliases: short forms that are a prefix (≥4 letters) of the generic name or of one of its words.
        abbreviations: short forms that are not prefixes ("pcm"); each with a source.
        brands: Indian brand names mapping to this generic; each with a source.
        schedule: Drugs Rules schedule with source.
        nlem: source id of the National List of Essential Medicines that lists it, if any.
        rxnorm: RxNorm ingredient RxCUI (single-ingredient drugs only) with source.
    """

    generic: str
    ingredients: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    abbreviations: tuple[SourcedName, ...] = ()
    brands: tuple[SourcedName, ...] = ()
    schedule: ScheduleFact | None = None
    nlem: str | None = None
    rxnorm: CodeFact | None = None

    @model_validator(mode="after")
    def _check(self) -> Drug:
        if self.generic != self.generic.strip().lower():
            raise ValueError(f"generic {self.generic!r} must be lower case")
        words = [w for w in re.split(r"[\s+/-]+", self.generic) if w]
        for alias in self.aliases:
            if len(alias) < 4 or not any(w.startswith(alias.lower()) for w in [self.generic, *words]):
                raise ValueError(
                    f"alias {alias!r} of {self.generic!r} is not a ≥4-letter prefix; list it under abbreviations "
                    "with a source"
                )
        return self

    @property
    def ingredient_names(self) -> tuple[str, ...]:
        """Generic names of the active ingredients."""
        return self.ingredients or (self.generic,)


class Herb(_Entry):
    """A single medicinal plant as used in AYUSH practice.

    Args:
        key: snake-case Latin binomial, the key rules use (`herb:withania_somnifera`).
        latin: botanical name as the source writes it.
        part: the part used (root, fruit, stem).
        latin_synonyms: other botanical names the source gives (Emblica officinalis = Phyllanthus emblica).
        sanskrit, hindi, english: names in each language (Devanagari or transliterated).
        names: other names whose language the source does not state.
        schedule_e1: True when the source puts the herb on Schedule E(1) of the Drugs Rules (poisonous; use
            under medical supervision); None when not stated.
    """

    key: str = Field(pattern=r"^[a-z]+(_[a-z]+)+$")
    latin: str
    latin_synonyms: tuple[str, ...] = ()
    part: str | None = None
    sanskrit: tuple[str, ...] = ()
    hindi: tuple[str, ...] = ()
    english: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    schedule_e1: bool | None = None


class Formulation(_Entry):
    """A classical AYUSH formulation.

    Args:
        key: upper snake case as rules use it (`formulation:TRIPHALA_CHURNA`).
        name: printed name ("Triphala Churna").
        names: other names (Sanskrit/Hindi spellings, Devanagari).
        ingredients: `herb:<key>` or `formulation:<KEY>` references.
        ingredients_complete: False when only some ingredients are listed (those rules need).
    """

    key: str = Field(pattern=r"^[A-Z0-9]+(_[A-Z0-9]+)*$")
    name: str
    names: tuple[str, ...] = ()
    system: Literal["ayurveda"] = "ayurveda"
    ingredients: tuple[str, ...]
    ingredients_complete: bool = True

    @field_validator("ingredients")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            if not re.fullmatch(r"herb:[a-z_]+|formulation:[A-Z0-9_]+", ref):
                raise ValueError(f"ingredient {ref!r} must be herb:<key> or formulation:<KEY>")
        return value


class Ambiguity(_Frozen):
    """A short form known to mean more than one thing; typing it never resolves.

    Args:
        name: the short form ("ms").
        meanings: what it can mean, as printed in the reason.
        source: source id that documents the ambiguity.
    """

    name: str
    meanings: tuple[str, ...] = Field(min_length=2)
    source: str


class FormularyFile(_Frozen):
    """One knowledge file as written."""

    schema_: Literal["integmed-formulary"] = Field(alias="schema")
    schema_version: Literal[1, 2]
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    date: date
    status: str | None = None
    sources: dict[str, Source]
    drugs: tuple[Drug, ...] = ()
    herbs: tuple[Herb, ...] = ()
    formulations: tuple[Formulation, ...] = ()
    ambiguous: tuple[Ambiguity, ...] = ()

    @model_validator(mode="after")
    def _packs_need_version_2(self) -> FormularyFile:
        if self.schema_version < 2:
            has_packs = any(p.packs for e in (*self.drugs, *self.herbs, *self.formulations) for p in e.presentations)
            has_packs = has_packs or any(b.packs for d in self.drugs for b in d.brands)
            if has_packs:
                raise ValueError("pack sizes (`packs:`) need schema_version 2")
        return self


Entry: TypeAlias = Drug | Herb | Formulation
MatchedAs: TypeAlias = Literal[
    "generic", "alias", "abbreviation", "brand", "latin", "sanskrit", "hindi", "english", "name"
]


class Resolved(_Frozen):
    """What a medicine name resolved to.

    Args:
        key: stable entry key: the generic for drugs ("metformin"), the herb key ("withania_somnifera") or the
            formulation key ("TRIPHALA_CHURNA").
        kind: drug, herb or formulation.
        system: modern or ayurveda.
        display_name: printed name, upper case ("METFORMIN", "AMOXICILLIN + CLAVULANIC ACID",
            "TRIPHALA CHURNA", "ASHWAGANDHA").
        matched: the name as written in the formulary that matched.
        matched_as: which kind of name matched (generic, brand, hindi …).
        ingredients: for drugs, the ingredient generic names (lower case); empty for AYUSH items.
        herbs: herb keys an AYUSH item contains, nested formulations expanded; a herb resolves to itself.
        formulations: formulation keys involved (the item itself and nested ones), outermost first.
        rxnorm_code: RxNorm ingredient RxCUI when the formulary carries one.
    """

    key: str
    kind: Kind
    system: System
    display_name: str
    matched: str
    matched_as: MatchedAs
    ingredients: tuple[str, ...] = ()
    herbs: tuple[str, ...] = ()
    formulations: tuple[str, ...] = ()
    rxnorm_code: str | None = None

    @property
    def concepts(self) -> tuple[str, ...]:
        """Rule concepts this item triggers: `drug:<generic>`, `formulation:<KEY>`, `herb:<key>`."""
        return (
            *(f"drug:{i}" for i in self.ingredients),
            *(f"formulation:{f}" for f in self.formulations),
            *(f"herb:{h}" for h in self.herbs),
        )


class NameLookup(_Frozen):
    """Result of looking up a typed name.

    Args:
        status: found, ambiguous (declared, or a prefix of several names) or unknown.
        resolved: the entry when found.
        candidates: printed names it could mean (ambiguous), or the one name it is a prefix of (unknown).
        reason: sentence for the doctor when not found.
    """

    status: Literal["found", "ambiguous", "unknown"]
    resolved: Resolved | None = None
    candidates: tuple[str, ...] = ()
    reason: str | None = None


class Formulary:
    """Indexed, validated formulary. Build with `load_default()` or `from_documents()`; immutable after."""

    def __init__(self, files: Sequence[FormularyFile]) -> None:
        """Index validated files.

        Args:
            files: the parsed knowledge files.

        Raises:
            FormularyError: on an unknown source id, a duplicate entry, a name pointing at two entries, or a
                formulation ingredient that is not a known herb or formulation.
        """
        self.files = tuple(files)
        self.sources: dict[str, Source] = {}
        self._entries: dict[str, Entry] = {}
        self._names: dict[str, tuple[str, MatchedAs, str]] = {}
        self._ambiguous: dict[str, Ambiguity] = {}
        for f in self.files:
            for sid, src in f.sources.items():
                if sid in self.sources and self.sources[sid] != src:
                    raise FormularyError(f"source id {sid!r} is defined differently in two files")
                self.sources[sid] = src
        for f in self.files:
            entries: list[Entry] = [*f.drugs, *f.herbs, *f.formulations]
            for entry in entries:
                self._add_entry(entry)
            for amb in f.ambiguous:
                self._check_source(amb.source, f"ambiguous {amb.name!r}")
                key = name_key(amb.name)
                if key in self._names or key in self._ambiguous:
                    raise FormularyError(f"ambiguous short form {amb.name!r} is also a name or listed twice")
                self._ambiguous[key] = amb
        self._check_formulations()
        self._sorted_names = sorted(self._names)
        self._resolved_cache: dict[str, Resolved] = {}

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, object]]) -> Formulary:
        """Validate and index already-parsed YAML documents.

        Args:
            documents: one mapping per knowledge file.

        Returns:
            The formulary.

        Raises:
            FormularyError: when a document does not validate (the message names the field) or the files
                clash (see `__init__`).
        """
        files = []
        for number, doc in enumerate(documents, 1):
            try:
                files.append(FormularyFile.model_validate(doc))
            except ValueError as exc:
                raise FormularyError(f"formulary document {number}: {exc}") from exc
        return cls(files)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Formulary:
        """Parse YAML texts (one per file) and index them; see `from_documents`."""
        docs = []
        for text in texts:
            doc = yaml.safe_load(text)
            if not isinstance(doc, dict):
                raise FormularyError("a formulary file must be a YAML mapping")
            docs.append(doc)
        return cls.from_documents(docs)

    @classmethod
    def load_default(cls) -> Formulary:
        """The formulary shipped in `shared/knowledge/formulary/`, parsed once per process (cached)."""
        return _load_default()

    def _check_source(self, sid: str | None, where: str) -> None:
        if sid is not None and sid not in self.sources:
            raise FormularyError(f"{where}: unknown source id {sid!r}")

    def _add_entry(self, entry: Entry) -> None:
        key = entry_key(entry)
        if key in self._entries:
            raise FormularyError(f"duplicate entry {key!r}")
        self._entries[key] = entry
        self._check_entry_sources(key, entry)
        for name, matched_as in _entry_names(entry):
            nk = name_key(name)
            if not nk:
                raise FormularyError(f"{key}: empty name")
            previous = self._names.get(nk)
            if previous is not None and previous[0] != key:
                raise FormularyError(f"name {name!r} points at both {previous[0]!r} and {key!r}")
            if previous is None:
                self._names[nk] = (key, matched_as, name)
        if isinstance(entry, Drug) and entry.rxnorm is not None and len(entry.ingredient_names) != 1:
            raise FormularyError(f"{key}: an RxNorm ingredient code only fits a single-ingredient drug")

    def _check_entry_sources(self, key: str, entry: Entry) -> None:
        self._check_source(entry.source, key)
        if entry.timing is not None:
            self._check_source(entry.timing.source, f"{key} timing")
        for p in entry.presentations:
            self._check_source(p.source, f"{key} {p.form}")
            for pack in p.packs:
                self._check_source(pack.source, f"{key} {p.form} pack {pack.size} {pack.unit}")
            if p.effective_route is None:
                raise FormularyError(f"{key} {p.form}: the form does not imply a route; write `route:`")
        if isinstance(entry, Drug):
            for sourced in (*entry.brands, *entry.abbreviations):
                self._check_source(sourced.source, f"{key} name {sourced.name!r}")
            for abbreviation in entry.abbreviations:
                if abbreviation.packs:
                    raise FormularyError(f"{key}: short form {abbreviation.name!r} cannot carry packs; only brands do")
            for brand in entry.brands:
                self._check_brand_packs(key, entry, brand)
            for fact in (entry.schedule, entry.rxnorm):
                if fact is not None:
                    self._check_source(fact.source, f"{key} {type(fact).__name__}")
            self._check_source(entry.nlem, f"{key} nlem")

    def _check_brand_packs(self, key: str, entry: Drug, brand: SourcedName) -> None:
        for pack in brand.packs:
            where = f"{key} brand {brand.name!r} pack {pack.size} {pack.unit}"
            self._check_source(pack.source, where)
            forms = [p for p in entry.presentations if p.form == pack.form]
            if not forms:
                raise FormularyError(f"{where}: {entry.generic} has no {FORMS[pack.form].label} presentation")
            labels = {s.label for p in forms for s in p.strengths}
            unknown = [s for s in pack.strengths if s not in labels]
            if unknown:
                raise FormularyError(f"{where}: strength(s) {unknown} are not listed for the {FORMS[pack.form].label}")
            try:
                Presentation(
                    form=pack.form,
                    strengths=forms[0].strengths,
                    dose_unit=forms[0].dose_unit,
                    route=forms[0].route,
                    packs=(Pack(**pack.model_dump(exclude={"form", "strengths"})),),
                )
            except ValueError as exc:
                raise FormularyError(f"{where}: {exc}") from exc

    def packs_for(
        self, key: str, presentation: Presentation, strength: str | None, *, brand: str | None = None
    ) -> tuple[Pack, ...]:
        """The packs a presentation of an entry is dispensed in, best first.

        Args:
            key: the entry key.
            presentation: one of the entry's presentations.
            strength: the chosen strength label, or None (AYUSH items without strengths).
            brand: the brand name the line named, if any: its own packs for this form come first.

        Returns:
            The brand's packs for the form and strength (if a brand was named and has any), then the
            presentation's packs for the strength; empty when the formulary has none.
        """
        entry = self._entries.get(key)
        branded: tuple[Pack, ...] = ()
        if brand is not None and isinstance(entry, Drug):
            for b in entry.brands:
                if name_key(b.name) == name_key(brand):
                    branded = tuple(p for p in b.packs if p.form == presentation.form and p.fits(strength))
        return (*branded, *presentation.packs_for(strength))

    def _check_formulations(self) -> None:
        for entry in self._entries.values():
            if isinstance(entry, Formulation):
                for ref in entry.ingredients:
                    kind, _, target = ref.partition(":")
                    found = self._entries.get(target)
                    if found is None or (kind == "herb") != isinstance(found, Herb):
                        raise FormularyError(f"{entry.key}: ingredient {ref!r} is not in the formulary")
                self._expand(entry.key, ())

    # -- queries ------------------------------------------------------------------------------------------
    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry, in file order."""
        return tuple(self._entries.values())

    def get_entry(self, key: str) -> Entry:
        """The entry with this key.

        Raises:
            KeyError: when there is none.
        """
        return self._entries[key]

    def find_by_generic(self, generic: str) -> Drug | None:
        """The drug whose generic name is `generic` (any case/spacing), or None."""
        hit = self._names.get(name_key(generic))
        entry = self._entries.get(hit[0]) if hit else None
        return entry if isinstance(entry, Drug) and name_key(entry.generic) == name_key(generic) else None

    def resolve(self, name: str) -> Resolved | None:
        """Resolve a medicine name exactly (after case/spacing/Unicode normalisation).

        Accepts a generic (INN), a declared short form, an Indian brand, a herb's Latin, Sanskrit, Hindi or
        English name, or a formulation's name. Never completes a prefix and never picks one of several
        meanings.

        Args:
            name: the name as typed or printed, e.g. "METFORMIN", "Glycomet", "अश्वगंधा".

        Returns:
            The resolved item, or None when the name is unknown or a declared ambiguous short form (use
            `lookup` for the reason and candidates).
        """
        hit = self._names.get(name_key(name))
        if hit is None:
            return None
        key, matched_as, matched = hit
        cached = self._resolved_cache.get(matched)
        if cached is None:
            cached = self._build_resolved(key, matched_as, matched)
            self._resolved_cache[matched] = cached
        return cached

    def lookup(self, name: str) -> NameLookup:
        """Look a typed name up and explain a miss.

        Args:
            name: the name as typed.

        Returns:
            found (with `resolved`); ambiguous when the formulary declares the short form ambiguous or it is a
            prefix (≥3 characters) of names of several entries; unknown otherwise, with the single entry it is
            a prefix of (if any) as a suggestion. A prefix is never taken as the name.
        """
        resolved = self.resolve(name)
        if resolved is not None:
            return NameLookup(status="found", resolved=resolved)
        key = name_key(name)
        amb = self._ambiguous.get(key)
        if amb is not None:
            return NameLookup(
                status="ambiguous",
                candidates=amb.meanings,
                reason=f"'{name}' is ambiguous: it can mean {_or_list(amb.meanings)}; type the full name",
            )
        targets = self._prefix_targets(key) if len(key) >= 3 else []
        if len(targets) > 1:
            shown = targets[:6]
            more = "" if len(targets) <= 6 else f" and {len(targets) - 6} more"
            return NameLookup(
                status="ambiguous",
                candidates=tuple(targets),
                reason=f"'{name}' could be {_or_list(shown)}{more}; type more of the name",
            )
        if targets:
            return NameLookup(
                status="unknown",
                candidates=tuple(targets),
                reason=f"'{name}' is not a name or declared short form; did you mean {targets[0]}?",
            )
        return NameLookup(status="unknown", reason=f"'{name}' is not in the formulary")

    def has_name(self, key: str) -> bool:
        """True when `key` (already `name_key`-normalised) is a full name or a declared ambiguous short form."""
        return key in self._names or key in self._ambiguous

    def has_name_prefix(self, key: str) -> bool:
        """True when some name key starts with `key` (already normalised); used to extend a name match."""
        i = bisect_left(self._sorted_names, key)
        return i < len(self._sorted_names) and self._sorted_names[i].startswith(key)

    def expand_formulation(self, key: str) -> tuple[str, ...]:
        """Herb keys in a formulation, nested formulations expanded, in order of first appearance.

        Raises:
            KeyError: when `key` is not a formulation of this formulary.
        """
        entry = self._entries[key]
        if not isinstance(entry, Formulation):
            raise KeyError(key)
        return self._expand(key, ())[0]

    def _expand(self, key: str, stack: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if key in stack:
            raise FormularyError(f"formulation {key} contains itself via {' → '.join(stack)}")
        entry = self._entries[key]
        assert isinstance(entry, Formulation)
        herbs: list[str] = []
        forms: list[str] = [key]
        for ref in entry.ingredients:
            kind, _, target = ref.partition(":")
            if kind == "herb":
                herbs.append(target)
            else:
                sub_herbs, sub_forms = self._expand(target, (*stack, key))
                herbs.extend(sub_herbs)
                forms.extend(sub_forms)
        return tuple(dict.fromkeys(herbs)), tuple(dict.fromkeys(forms))

    def _prefix_targets(self, key: str) -> list[str]:
        i = bisect_left(self._sorted_names, key)
        targets: dict[str, None] = {}
        while i < len(self._sorted_names) and self._sorted_names[i].startswith(key):
            entry_k, matched_as, _ = self._names[self._sorted_names[i]]
            if matched_as != "brand":  # a brand prefix is no evidence of a generic
                targets[display_name(self._entries[entry_k])] = None
            i += 1
        return sorted(targets)

    def _build_resolved(self, key: str, matched_as: MatchedAs, matched: str) -> Resolved:
        entry = self._entries[key]
        if isinstance(entry, Drug):
            return Resolved(
                key=key,
                kind="drug",
                system="modern",
                display_name=display_name(entry),
                matched=matched,
                matched_as=matched_as,
                ingredients=entry.ingredient_names,
                rxnorm_code=entry.rxnorm.code if entry.rxnorm else None,
            )
        if isinstance(entry, Herb):
            return Resolved(
                key=key,
                kind="herb",
                system="ayurveda",
                display_name=display_name(entry),
                matched=matched,
                matched_as=matched_as,
                herbs=(key,),
            )
        herbs, forms = self._expand(key, ())
        return Resolved(
            key=key,
            kind="formulation",
            system="ayurveda",
            display_name=display_name(entry),
            matched=matched,
            matched_as=matched_as,
            herbs=herbs,
            formulations=forms,
        )


def entry_key(entry: Entry) -> str:
    """The stable key of an entry (generic for drugs, `key` for herbs and formulations)."""
    return entry.generic if isinstance(entry, Drug) else entry.key


def display_name(entry: Entry) -> str:
    """Printed upper-case name: the generic, the formulation name, or a herb's first Sanskrit (else first) name."""
    if isinstance(entry, Drug):
        return entry.generic.upper()
    if isinstance(entry, Formulation):
        return entry.name.upper()
    first = [*entry.sanskrit, *entry.names, entry.latin][0]
    return first.upper()


def _entry_names(entry: Entry) -> list[tuple[str, MatchedAs]]:
    if isinstance(entry, Drug):
        return [
            (entry.generic, "generic"),
            *((a, "alias") for a in entry.aliases),
            *((a.name, "abbreviation") for a in entry.abbreviations),
            *((b.name, "brand") for b in entry.brands),
        ]
    if isinstance(entry, Herb):
        return [
            (entry.latin, "latin"),
            (entry.key.replace("_", " "), "latin"),
            *((n, "latin") for n in entry.latin_synonyms),
            *((n, "sanskrit") for n in entry.sanskrit),
            *((n, "hindi") for n in entry.hindi),
            *((n, "english") for n in entry.english),
            *((n, "name") for n in entry.names),
        ]
    return [(entry.name, "name"), (entry.key.replace("_", " "), "name"), *((n, "name") for n in entry.names)]


def _or_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


@functools.lru_cache(maxsize=1)
def _load_default() -> Formulary:
    folder = resources.files("shared.knowledge") / "formulary"
    texts = [
        p.read_text(encoding="utf-8")
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    ]
    return Formulary.from_texts(texts)
