"""Prescription shorthand: one typed line ("Metf 1000 bd 30d") → `ExpandedLine`; never guesses, never raises.

Grammar (clinical_rx.md §1.3, as implemented; docs/shorthand.md has the full table):

    line     := form? drug strength? form? (dose | slots | frequency | when | duration | route | qty | extra)*
                ("then" segment)*
    segment  := (dose | slots | frequency | when | duration)*            ; a taper step

Reading happens in two passes. `_Lexer` turns the original text into tokens that keep character offsets into
the ORIGINAL string (Devanagari/Bengali/Tamil digits, ½, dashes and full-width forms are normalised without
losing offsets). `_Syntax` turns tokens into items (a frequency, a duration …) without the formulary except
for the medicine name. `_Semantics` checks the items against the formulary entry (strengths, forms, dose
units), applies its defaults, computes the timing and the quantity, and reports everything it could not read
as `Unresolved` entries with the span and a reason. Any unresolved entry blocks signing.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal, TypeAlias, cast

from pydantic import BaseModel, ConfigDict, JsonValue

from shared.rx import timing as tm
from shared.rx.dispense import Dispense, dispense, pack_content
from shared.rx.formulary import (
    FORMS,
    Drug,
    Entry,
    Formulary,
    NameLookup,
    Pack,
    Presentation,
    Resolved,
    Strength,
    name_key,
)

_NOT_SHORTHAND = " is not part of the shorthand"
MAX_LINE_CHARS = 500
"""A line longer than this is refused whole: one line holds one medicine."""
MAX_DURATION_DAYS = 366
MAX_SLOT_DOSE = Decimal(20)

_log = logging.getLogger(__name__)


class Unresolved(BaseModel):
    """A part of the line that was not understood, or a fact that is missing.

    Args:
        token: the text at `start:end` of the original line ("" for a missing part, at the end of the line).
        start: character offset into the original line.
        end: character offset (exclusive).
        reason: sentence for the doctor.
    """

    model_config = ConfigDict(frozen=True)

    token: str
    start: int
    end: int
    reason: str


class ExpandedLine(BaseModel):
    """One expanded prescription line, JSON-ready (the `expand-shorthand` response body).

    Args:
        generic_name: upper-case generic (INN) or AYUSH name; None when no known medicine was named.
        strength: as printed, e.g. "1000mg", "500mg+125mg", "125mg/5mL"; None for most AYUSH items.
        dosage_form: "tablet", "capsule", "syrup", "churna" …
        route: "oral", "subcutaneous" …
        frequency: how often in words ("Twice daily").
        duration_days: total days (months count as the clinic's days per month, 30 by default).
        quantity: amount to dispense, counted in the form's dispense unit: tablets/capsules/sachets for solids,
            grams for churna/ghrita/avaleha/bhasma, whole packs (bottles, pens, inhalers) for liquids and
            pack-dispensed forms; None when it cannot be computed (an `unresolved` entry says why).
        instructions: patient-facing directions in plain English.
        rxnorm_code: RxNorm ingredient RxCUI when the formulary carries one.
        timing: FHIR R4 Timing.repeat-shaped dict; keys and units in `shared.rx.timing`.
        defaulted: names of fields filled from the formulary rather than typed ("dosage_form", "route",
            "strength", "timing.dose", "timing.when", "instructions").
        unresolved: what was not understood; empty when the line is fully understood.
        dispense: additional to the seed's fields: `quantity` in whole packs of the formulary's default pack
            (packs, pack_size, pack_name, unit, total_units, note); None when no medicine in a known form was
            named. `packs` is None when they cannot be counted, and `note` says why.
    """

    model_config = ConfigDict(frozen=True)

    generic_name: str | None
    strength: str | None
    dosage_form: str | None
    route: str | None
    frequency: str | None
    duration_days: int | None
    quantity: int | None
    instructions: str | None
    rxnorm_code: str | None
    timing: dict[str, JsonValue]
    defaulted: tuple[str, ...]
    unresolved: tuple[Unresolved, ...]
    dispense: Dispense | None = None

    @property
    def is_complete(self) -> bool:
        """True when a medicine was named and nothing is unresolved (the line may be signed)."""
        return self.generic_name is not None and not self.unresolved


def expand(line: str, formulary: Formulary, *, days_per_month: int = 30) -> ExpandedLine:
    """Expand one shorthand line against the formulary.

    Pure and offline. Never raises for any `str`: what it cannot read comes back in `unresolved`.

    Args:
        line: the line as typed, e.g. "Metf 1000 bd 30d", "amlo 5 0-0-1 x 1m", "त्रिफला चूर्ण ५g hs x ३०d".
        formulary: the formulary to resolve names, strengths, forms and defaults against.
        days_per_month: days a month counts for ("x 1m"); a clinic setting (30 or 28).

    Returns:
        The expanded line. `generic_name` is None when no known medicine was named.
    """
    if not isinstance(line, str):
        return _refused("", 0, "the line is not text")
    try:
        return _expand(line, formulary, days_per_month)
    except Exception:  # a bug must not lose the doctor's line; the whole line is marked instead
        _log.exception("shorthand expansion failed for a line of %d characters", len(line))
        return _refused(line, len(line), "this line could not be read; please retype it")


def _refused(line: str, end: int, reason: str) -> ExpandedLine:
    return ExpandedLine(
        generic_name=None, strength=None, dosage_form=None, route=None, frequency=None, duration_days=None,
        quantity=None, instructions=None, rxnorm_code=None, timing={}, defaulted=(),
        unresolved=(Unresolved(token=line[:end], start=0, end=end, reason=reason),),
    )  # fmt: skip


def _expand(line: str, formulary: Formulary, days_per_month: int) -> ExpandedLine:
    if len(line) > MAX_LINE_CHARS:
        return _refused(line, len(line), f"the line has {len(line)} characters; one line holds one medicine "
                                         f"(at most {MAX_LINE_CHARS} characters)")  # fmt: skip
    tokens = _lex(line)
    if not tokens:
        return _refused(line, len(line), "the line is empty; type a medicine, e.g. 'metf 500 bd x 30d'")
    syntax = _Syntax(line, tokens, formulary)
    syntax.run()
    return _Semantics(line, syntax, formulary, days_per_month).run()


# ======================================================================================================
# Lexer
# ======================================================================================================
TokKind: TypeAlias = Literal["num", "word", "sym", "quote", "other"]


@dataclass(frozen=True, slots=True)
class Tok:
    """A token: normalised text plus offsets into the original line."""

    kind: TokKind
    text: str
    start: int
    end: int


_FRACTIONS = {"½": "0.5", "¼": "0.25", "¾": "0.75"}
_DASHES = set("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d")
_TOKEN = re.compile(
    r'(?P<quote>["“][^"”]*["”])'
    r"|(?P<num>\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<word>[a-z](?:\.[a-z])+\.?(?![a-z])"
    r"|(?:[^\W\d_]|[\u0300-\u036f\u0900-\u0963\u0970-\u0dff\u200c\u200d])+(?:'s)?)"
    r"|(?P<sym>[-/+#%,;:().→>=&*])"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.S,
)


def _normalise(line: str) -> tuple[str, list[int] | None]:
    """Lower-case, ASCII digits, ½ → 0.5, dashes → "-"; the list maps each output char to its source index."""
    if line.isascii():
        return line.lower(), None
    out: list[str] = []
    src: list[int] = []
    for i, ch in enumerate(line):
        if ch in _FRACTIONS:
            rep = _FRACTIONS[ch][1:] if out and out[-1].isdigit() else _FRACTIONS[ch]
        elif ch in _DASHES:
            rep = "-"
        elif ch == "×":
            rep = "x"
        elif ch == "⁄":
            rep = "/"
        elif unicodedata.category(ch) == "Nd":
            rep = str(unicodedata.digit(ch))
        elif unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and not ch.isspace():
            rep = "\x00"  # lexed as `other` → reported, never silently dropped
        else:
            rep = unicodedata.normalize("NFKC", ch).casefold() or " "
        out.append(rep)
        src.extend([i] * len(rep))
    return "".join(out), src


def _lex(line: str) -> list[Tok]:
    text, src = _normalise(line)
    tokens: list[Tok] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space" or kind is None:
            continue
        if src is None:
            start, end = m.start(), m.end()
        else:
            start, end = src[m.start()], src[m.end() - 1] + 1
        value = m.group()
        if kind == "word" and "." in value:
            value = value.replace(".", "")
        tokens.append(Tok(kind, value, start, end))  # type: ignore[arg-type]
    return tokens


# ======================================================================================================
# Vocabulary (grammar words; no clinical facts)
# ======================================================================================================
def _phrases(mapping: dict[str, object]) -> dict[tuple[str, ...], object]:
    return {tuple(k.split()): v for k, v in mapping.items()}


FREQ_WORDS: dict[tuple[str, ...], object] = _phrases({
    "od": (1, 1, "d"), "qd": (1, 1, "d"), "daily": (1, 1, "d"), "once daily": (1, 1, "d"),
    "once a day": (1, 1, "d"), "every day": (1, 1, "d"), "once per day": (1, 1, "d"),
    "bd": (2, 1, "d"), "bid": (2, 1, "d"), "twice daily": (2, 1, "d"), "twice a day": (2, 1, "d"),
    "tds": (3, 1, "d"), "tid": (3, 1, "d"), "thrice daily": (3, 1, "d"), "thrice a day": (3, 1, "d"),
    "three times a day": (3, 1, "d"), "three times daily": (3, 1, "d"),
    "qid": (4, 1, "d"), "qds": (4, 1, "d"), "four times a day": (4, 1, "d"), "four times daily": (4, 1, "d"),
    "qod": (1, 2, "d"), "eod": (1, 2, "d"), "alt day": (1, 2, "d"), "alternate day": (1, 2, "d"),
    "alternate days": (1, 2, "d"), "every other day": (1, 2, "d"), "on alternate days": (1, 2, "d"),
    "weekly": (1, 1, "wk"), "qw": (1, 1, "wk"), "once a week": (1, 1, "wk"), "once weekly": (1, 1, "wk"),
    "twice a week": (2, 1, "wk"), "twice weekly": (2, 1, "wk"),
    "monthly": (1, 1, "mo"), "once a month": (1, 1, "mo"), "once monthly": (1, 1, "mo"),
})  # fmt: skip
WHEN_WORDS: dict[tuple[str, ...], object] = _phrases({
    "hs": ("HS",), "at bedtime": ("HS",), "bedtime": ("HS",), "at bed time": ("HS",),
    "mane": ("MORN",), "am": ("MORN",), "morning": ("MORN",), "in the morning": ("MORN",),
    "nocte": ("NIGHT",), "night": ("NIGHT",), "at night": ("NIGHT",),
    "evening": ("EVE",), "in the evening": ("EVE",), "afternoon": ("AFT",), "noon": ("NOON",),
    "at noon": ("NOON",), "on waking": ("WAKE",),
    "ac": ("AC",), "before food": ("AC",), "before meals": ("AC",), "before meal": ("AC",),
    "pc": ("PC",), "af": ("PC",), "after food": ("PC",), "after meals": ("PC",),
    "after meal": ("PC",), "with food": ("C",), "with meals": ("C",), "with meal": ("C",),
    "bbf": ("ACM",), "before breakfast": ("ACM",), "after breakfast": ("PCM",), "with breakfast": ("CM",),
    "before lunch": ("ACD",), "after lunch": ("PCD",), "with lunch": ("CD",),
    "before dinner": ("ACV",), "after dinner": ("PCV",), "with dinner": ("CV",),
    "empty stomach": ("ACM", "on an empty stomach"), "on empty stomach": ("ACM", "on an empty stomach"),
    "on an empty stomach": ("ACM", "on an empty stomach"),
})  # fmt: skip
ANUPANA_WORDS: dict[tuple[str, ...], object] = _phrases({
    w: w for w in ("with warm water", "with lukewarm water", "with water", "with milk", "with warm milk",
                   "with honey", "with ghee", "with buttermilk", "with hot water")
})  # fmt: skip
PRN_WORDS = _phrases(dict.fromkeys(("sos", "prn", "as needed", "when needed", "as required", "if needed"), True))
STAT_WORDS = _phrases(dict.fromkeys(("stat", "single dose", "once only", "immediately", "once"), True))
ROUTE_WORDS: dict[tuple[str, ...], object] = _phrases({
    "po": "oral", "oral": "oral", "orally": "oral", "per oral": "oral", "by mouth": "oral",
    "sl": "sublingual", "sublingual": "sublingual", "iv": "intravenous", "im": "intramuscular",
    "sc": "subcutaneous", "s / c": "subcutaneous", "subcut": "subcutaneous", "subcutaneous": "subcutaneous",
    "top": "topical", "topical": "topical", "la": "topical", "local": "topical", "l / a": "topical",
    "inh": "inhalation", "inhaled": "inhalation", "pr": "rectal", "per rectal": "rectal", "pv": "vaginal",
    "per vaginal": "vaginal", "e / d": "ophthalmic", "ear": "otic", "nasal": "nasal",
})  # fmt: skip
FORM_WORDS: dict[tuple[str, ...], object] = _phrases({
    "tab": "tablet", "tabs": "tablet", "tablet": "tablet", "tablets": "tablet",
    "cap": "capsule", "caps": "capsule", "capsule": "capsule", "capsules": "capsule",
    "syp": "syrup", "syr": "syrup", "syrup": "syrup", "susp": "suspension", "suspension": "suspension",
    "drops": "oral_drops", "oral drops": "oral_drops", "eye drops": "eye_drops", "ear drops": "ear_drops",
    "nasal spray": "nasal_spray", "inj": "injection", "injection": "injection", "oint": "ointment",
    "ointment": "ointment", "cream": "cream", "gel": "gel", "inhaler": "inhaler", "sachet": "sachet",
    "sachets": "sachet", "supp": "suppository", "suppository": "suppository",
    "churna": "churna", "churnam": "churna", "choorna": "churna", "chooranam": "churna",
    "vati": "vati", "vatika": "vati", "gutika": "vati", "gulika": "vati",
    "kashayam": "kashayam", "kashaya": "kashayam", "kwath": "kashayam", "kwatha": "kashayam",
    "asava": "asava_arishta", "arishta": "asava_arishta", "taila": "taila", "tailam": "taila",
    "ghrita": "ghrita", "ghritam": "ghrita", "avaleha": "avaleha", "lehyam": "avaleha", "bhasma": "bhasma",
})  # fmt: skip
RELEASE_WORDS = {"sr", "er", "xr", "mr", "cr"}
DOSE_UNITS = {
    "tab": "tablet", "tabs": "tablet", "tablet": "tablet", "tablets": "tablet", "cap": "capsule",
    "caps": "capsule", "capsule": "capsule", "capsules": "capsule", "ml": "mL", "mls": "mL", "g": "g",
    "gm": "g", "gms": "g", "gram": "g", "grams": "g", "mg": "mg", "mcg": "mcg", "ug": "mcg", "μg": "mcg",
    "tsp": "tsp", "teaspoon": "tsp", "teaspoons": "tsp", "tbsp": "tbsp", "drop": "drop", "drops": "drop",
    "gtt": "drop", "puff": "puff", "puffs": "puff", "u": "IU", "iu": "IU", "unit": "IU", "units": "IU",
    "sachet": "sachet", "sachets": "sachet", "spray": "spray", "sprays": "spray",
}  # fmt: skip
STRENGTH_UNITS = {"mg": "mg", "g": "g", "mcg": "mcg", "ug": "mcg", "μg": "mcg", "iu": "IU", "ml": "mL", "%": "%"}
DURATION_UNITS = {
    "d": "d", "day": "d", "days": "d", "dys": "d", "w": "wk", "wk": "wk", "wks": "wk", "week": "wk",
    "weeks": "wk", "m": "mo", "mo": "mo", "mon": "mo", "mth": "mo", "mths": "mo", "month": "mo", "months": "mo",
}  # fmt: skip
REFUSED_UNITS = {"min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
                 "y": "years", "yr": "years", "yrs": "years", "year": "years", "years": "years"}  # fmt: skip
PERIOD_UNITS = {"h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "hrly": "h", "hourly": "h",
                "d": "d", "day": "d", "days": "d", "daily": "d", "wk": "wk", "week": "wk", "weekly": "wk",
                "w": "wk", "mo": "mo", "month": "mo", "m": "mo"}  # fmt: skip
OPEN_DURATION = _phrases(
    dict.fromkeys(("continue", "to continue", "till review", "until review", "long term", "ongoing"), True)
)
THEN_WORDS = _phrases(dict.fromkeys(("then", "followed by", "and then", "→", "- >", ">"), True))
QTY_WORDS = {"qty", "quantity", "#", "disp", "dispense", "total"}
MAX_WORDS = {"max", "maximum"}
DAY_WORDS = {"sunday": "sun", "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
             "friday": "fri", "saturday": "sat", "sun": "sun", "mon": "mon", "tue": "tue", "tues": "tue",
             "wed": "wed", "thu": "thu", "thurs": "thu", "fri": "fri", "sat": "sat"}  # fmt: skip
AMBIGUOUS_WORDS = {
    "bf": "'bf' can mean before food or breakfast; write 'ac' or 'bbf'",
    "pm": "'pm' can mean afternoon (its FHIR meaning) or night; write 'afternoon' or 'nocte'",
    "os": "'os' means left eye or by mouth; write 'left eye' or 'po'",
    "ou": "'ou' means both eyes; write 'both eyes' and the frequency in words",
    "cc": "'cc' is on the error-prone list; write 'ml'",
}
FILLER_WORDS = {"take", "and", "to", "be", "taken", "give", "of", "the", "a", "an", "x"}
_PHRASE_TABLES: tuple[tuple[str, dict[tuple[str, ...], object]], ...] = (
    ("then", THEN_WORDS), ("open", OPEN_DURATION), ("freq", FREQ_WORDS), ("anupana", ANUPANA_WORDS),
    ("when", WHEN_WORDS), ("prn", PRN_WORDS), ("stat", STAT_WORDS), ("route", ROUTE_WORDS), ("form", FORM_WORDS),
)  # fmt: skip
KEYWORDS: frozenset[str] = frozenset(
    {k[0] for _, table in _PHRASE_TABLES for k in table}
    | set(DOSE_UNITS) | set(DURATION_UNITS) | RELEASE_WORDS | QTY_WORDS | MAX_WORDS | set(AMBIGUOUS_WORDS)
    | {"for", "every", "q", "with", "x", "times", "sos"}
)  # fmt: skip
"""Words that end an unknown medicine name (the grammar owns them)."""


# ======================================================================================================
# Items (pass 1)
# ======================================================================================================
_NumberValue: TypeAlias = tuple[str, Decimal, str | None]
"""A number item: (typed key such as "500/125" or "60k", first value, unit word or None)."""


@dataclass
class Item:
    """A recognised piece of a line; `start`/`end` are offsets into the original line."""

    kind: str
    start: int
    end: int
    value: object = None
    text: str = ""


@dataclass
class _NameHit:
    start: int
    end: int
    lookup: NameLookup
    typed: str


class _Syntax:
    """Pass 1: tokens → name + items. Only the name needs the formulary."""

    def __init__(self, line: str, tokens: list[Tok], formulary: Formulary) -> None:
        self.line = line
        self.toks = tokens
        self.formulary = formulary
        self.items: list[Item] = []
        self.name: _NameHit | None = None
        self.name_missing: Item | None = None

    # -- helpers -----------------------------------------------------------------------------------------
    def _word(self, i: int) -> str | None:
        return self.toks[i].text if i < len(self.toks) and self.toks[i].kind in ("word", "sym") else None

    def _num(self, i: int) -> Decimal | None:
        if i < len(self.toks) and self.toks[i].kind == "num":
            try:
                return Decimal(self.toks[i].text)
            except InvalidOperation:  # pragma: no cover - the lexer only emits digits
                return None
        return None

    def _add(self, kind: str, i: int, j: int, value: object = None) -> int:
        self.items.append(Item(kind, self.toks[i].start, self.toks[j - 1].end, value, self._span(i, j)))
        return j

    def _span(self, i: int, j: int) -> str:
        return self.line[self.toks[i].start : self.toks[j - 1].end]

    def _phrase(self, i: int) -> tuple[str, object, int] | None:
        for length in (4, 3, 2, 1):
            words = tuple(t.text for t in self.toks[i : i + length])
            if len(words) < length:
                continue
            for kind, table in _PHRASE_TABLES:
                if words in table:
                    return kind, table[words], i + length
        return None

    # -- name ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Read the whole line into `name` and `items`."""
        i = 0
        while i < len(self.toks) and self.toks[i].kind in ("other", "sym"):
            if self.toks[i].kind == "other":
                self._add("unknown", i, i + 1, "this character is not part of the shorthand")
            i += 1
        hit = self._phrase(i)
        if hit is not None and hit[0] == "form" and self._num(hit[2]) is None:
            i = self._add("form", i, hit[2], hit[1])
        i = self._read_name(i)
        while i < len(self.toks):
            i = self._step(i)

    def _read_name(self, i: int) -> int:
        best: tuple[int, str] | None = None
        j = i
        key = ""
        while j < len(self.toks) and j - i < 8 and self.toks[j].kind in ("word", "num", "sym"):
            if self.toks[j].kind == "sym" and self.toks[j].text not in "-+/&'":
                break
            key = name_key(self._span(i, j + 1))
            if key and self.formulary.has_name(key):
                best = (j + 1, key)
            if not key or not self.formulary.has_name_prefix(key):
                break
            j += 1
        if best is not None:
            end = best[0]
            typed = self._span(i, end)
            self.name = _NameHit(self.toks[i].start, self.toks[end - 1].end, self.formulary.lookup(typed), typed)
            return end
        # unknown: the run of words up to the first grammar word or number
        j = i
        while j < len(self.toks) and self.toks[j].kind == "word" and self.toks[j].text not in KEYWORDS:
            j += 1
        if j == i:
            at = self.toks[i].start if i < len(self.toks) else len(self.line)
            self.name_missing = Item("no_name", at, at)
            return i
        typed = self._span(i, j)
        lookup = self.formulary.lookup(typed)
        if lookup.status == "unknown" and j - i > 1:
            first = self.formulary.lookup(self.toks[i].text)
            if first.status != "unknown" or first.candidates:
                lookup = first if first.status != "found" else lookup
        self.name = _NameHit(self.toks[i].start, self.toks[j - 1].end, lookup, typed)
        return j

    # -- items --------------------------------------------------------------------------------------------
    def _step(self, i: int) -> int:
        tok = self.toks[i]
        if tok.kind == "quote":  # free text keeps the doctor's own casing
            return self._add("quote", i, i + 1, self.line[tok.start : tok.end].strip('"“”'))
        if tok.kind == "other":
            return self._add("unknown", i, i + 1, "this character is not part of the shorthand")
        if tok.kind == "num":
            return self._number(i)
        for reader in (self._duration, self._every, self._max, self._qty, self._for):
            j = reader(i)
            if j is not None:
                return j
        hit = self._phrase(i)
        if hit is not None:
            kind, value, j = hit
            if kind == "form" and (self._word(j) in RELEASE_WORDS):
                return self._add("form", i, j + 1, "tablet_mr" if value == "tablet" else value)
            return self._add(kind, i, j, value)
        text = tok.text
        if text in RELEASE_WORDS:
            return self._add("form", i, i + 1, "tablet_mr")
        if text in DAY_WORDS:
            return self._add("day", i, i + 1, DAY_WORDS[text])
        if text in AMBIGUOUS_WORDS:
            return self._add("unknown", i, i + 1, AMBIGUOUS_WORDS[text])
        if tok.kind == "sym" or text in FILLER_WORDS:
            return i + 1
        return self._add("unknown_word", i, i + 1)

    def _number(self, i: int) -> int:
        """Slots, per-period frequency, a fraction, a duration, a dose with unit, or a bare number."""
        j = self._slots(i)
        if j is not None:
            return j
        j = self._per_period(i)
        if j is not None:
            return j
        j = self._duration(i)
        if j is not None:
            return j
        value = self._num(i)
        assert value is not None
        text_parts = [self.toks[i].text]
        j = i + 1
        # 500/125 (a combination strength) or 1/2 (a fraction)
        while self._word(j) == "/" and self._num(j + 1) is not None and self.toks[j].start == self.toks[j - 1].end:
            text_parts.append(self.toks[j + 1].text)
            j += 2
        if len(text_parts) == 2 and text_parts[1] in ("2", "4") and self._word(j) in DOSE_UNITS:
            frac = Decimal(text_parts[0]) / Decimal(text_parts[1])
            return self._add("dose", i, j + 1, (frac, DOSE_UNITS[self._word(j) or ""]))
        unit = self._word(j)
        if unit == "k" and len(text_parts) == 1 and self.toks[j].start == self.toks[j - 1].end:
            thousands = value * 1000  # "60k" = 60000: number notation, not a clinical convention
            return self._add("number", i, j + 1, (tm.plain(thousands), thousands, None))
        if unit in REFUSED_UNITS:
            return self._add("unknown", i, j + 1, f"durations in {REFUSED_UNITS[unit]} are not accepted; use days, "
                                                  "weeks or months")  # fmt: skip
        if unit is not None and (unit in DOSE_UNITS or unit in STRENGTH_UNITS):
            return self._add("number", i, j + 1, ("/".join(text_parts), value, unit))
        return self._add("number", i, j, ("/".join(text_parts), value, None))

    def _slots(self, i: int) -> int | None:
        values: list[Decimal] = []
        j = i
        while True:
            v = self._slot_value(j)
            if v is None:
                break
            values.append(v[0])
            j = v[1]
            if self._word(j) in ("-", "+") and self._slot_value(j + 1) is not None:
                j += 1
                continue
            break
        if len(values) not in (3, 4):
            return None
        unit = self._word(j)
        end = j + 1 if unit in DOSE_UNITS else j
        return self._add("slots", i, end, (tuple(values), DOSE_UNITS.get(unit or "")))

    def _slot_value(self, j: int) -> tuple[Decimal, int] | None:
        v = self._num(j)
        if v is None:
            return None
        if self._word(j + 1) == "/" and self._num(j + 2) in (2, 4):
            den = self._num(j + 2)
            assert den is not None
            return v / den, j + 3
        return v, j + 1

    def _per_period(self, i: int) -> int | None:
        """3x/d, 3 times a day, 2x/wk, 3x/2d, 4 hrly."""
        n = self._num(i)
        if n is None or n != n.to_integral_value() or n <= 0:
            return None
        j = i + 1
        w = self._word(j)
        if w in ("hrly", "hourly"):
            return self._add("freq", i, j + 1, (1, n, "h"))
        if w not in ("x", "times"):
            return None
        j += 1
        while self._word(j) in ("/", "a", "per", "every", "in", "each"):
            j += 1
        period = Decimal(1)
        p = self._num(j)
        if p is not None:
            period, j = p, j + 1
        unit = PERIOD_UNITS.get(self._word(j) or "")
        if unit is None or period <= 0:
            return None
        return self._add("freq", i, j + 1, (int(n), period, unit))

    def _every(self, i: int) -> int | None:
        """q6h, q 8 h, q2d, every 6 hours, every 2 days, every sunday."""
        w = self._word(i)
        if w not in ("q", "every", "each"):
            return None
        j = i + 1
        day = DAY_WORDS.get(self._word(j) or "")
        if day is not None and w != "q":
            return self._add("day", i, j + 1, day)
        n = self._num(j)
        if n is None or n <= 0:
            return None
        unit = PERIOD_UNITS.get(self._word(j + 1) or "")
        if unit is None:
            return None
        return self._add("freq", i, j + 2, (1, n, unit))

    def _duration(self, i: int) -> int | None:
        """x 5d, for 5 days, 5/7, 2/52, 3/12, 30d (a number glued or spaced to a duration unit)."""
        j = i
        if self._word(j) in ("x", "for", "×"):
            j += 1
        n = self._num(j)
        if n is None:
            return None
        if self._word(j + 1) == "/" and self._num(j + 2) in (7, 52, 12):
            den = self._num(j + 2)
            unit = {7: "d", 52: "wk", 12: "mo"}[int(den or 0)]
            return self._add("duration", i, j + 3, (n, unit))
        word = self._word(j + 1)
        if word in DURATION_UNITS and not (word == "d" and self._word(j + 2) == "/"):
            if word == "m" and self._word(j + 2) == "g":  # pragma: no cover - "mg" is one token
                return None
            return self._add("duration", i, j + 2, (n, DURATION_UNITS[word]))
        if word in REFUSED_UNITS and j > i:
            return self._add("unknown", i, j + 2, f"durations in {REFUSED_UNITS[word]} are not accepted")
        if j > i and self._word(i) == "x":
            return self._add("unknown", i, j + 1, "a duration needs a unit (d, wk, m) or N/7, N/52, N/12")
        return None

    def _max(self, i: int) -> int | None:
        """max 4/d, max 4 per day, max 4 a day, max 3 tabs/day."""
        if self._word(i) not in MAX_WORDS:
            return None
        n = self._num(i + 1)
        if n is None:
            return None
        j = i + 2
        if self._word(j) in DOSE_UNITS:
            j += 1
        while self._word(j) in ("/", "per", "a", "in", "times"):
            j += 1
        if PERIOD_UNITS.get(self._word(j) or "") == "d":
            return self._add("max", i, j + 1, n)
        if self._num(j) == 24 and PERIOD_UNITS.get(self._word(j + 1) or "") == "h":
            return self._add("max", i, j + 2, n)
        return None

    def _qty(self, i: int) -> int | None:
        if self._word(i) not in QTY_WORDS:
            return None
        j = i + 1
        if self._word(j) in (":", "="):
            j += 1
        n = self._num(j)
        if n is None:
            return None
        end = j + 2 if self._word(j + 1) in DOSE_UNITS else j + 1
        return self._add("qty", i, end, n)

    def _for(self, i: int) -> int | None:
        """'for pain' after sos/prn: the reason runs to the next grammar word."""
        if self._word(i) != "for" or self._num(i + 1) is not None:
            return None
        j = i + 1
        if j < len(self.toks) and self.toks[j].kind == "quote":
            return self._add("for", i, j + 1, self.line[self.toks[j].start : self.toks[j].end].strip('"“”'))
        while j < len(self.toks) and self.toks[j].kind == "word" and self.toks[j].text not in KEYWORDS:
            j += 1
        if j == i + 1:
            return None
        return self._add("for", i, j, self._span(i + 1, j))


# ======================================================================================================
# Semantics (pass 2)
# ======================================================================================================
@dataclass
class _Seg:
    items: list[Item] = field(default_factory=list)


class _Semantics:
    """Pass 2: items + formulary entry → fields, timing, quantity, unresolved entries."""

    def __init__(self, line: str, syntax: _Syntax, formulary: Formulary, days_per_month: int) -> None:
        self.line = line
        self.syntax = syntax
        self.formulary = formulary
        self.days_per_month = days_per_month
        self.unresolved: list[Unresolved] = []
        self.defaulted: list[str] = []
        self.resolved: Resolved | None = None
        self.entry: Entry | None = None
        self.presentation: Presentation | None = None
        self.strength: Strength | None = None
        self.form: str | None = None
        self.route: str | None = None
        self.extras: list[str] = []
        self.quantity_typed: Decimal | None = None
        self.total: Decimal | None = None
        self.why_no_total: str | None = None
        self.assumptions: list[str] = []
        self._packs_found: tuple[Pack, ...] | None = None

    def flag(self, start: int, end: int, reason: str) -> None:
        """Record an unresolved span (adjacent unknown words merge into one entry)."""
        last = self.unresolved[-1] if self.unresolved else None
        if last is not None and last.reason == reason and self.line[last.end : start].strip() == "":
            self.unresolved[-1] = Unresolved(
                token=self.line[last.start : end], start=last.start, end=end, reason=reason
            )
            return
        self.unresolved.append(Unresolved(token=self.line[start:end], start=start, end=end, reason=reason))

    def flag_word(self, item: Item) -> None:
        """Record a word the grammar does not know; a run of such words becomes one entry."""
        last = self.unresolved[-1] if self.unresolved else None
        if last is not None and last.reason.endswith(_NOT_SHORTHAND) and self.line[last.end : item.start].strip() == "":
            start = last.start
            self.unresolved.pop()
        else:
            start = item.start
        text = self.line[start : item.end]
        self.unresolved.append(Unresolved(token=text, start=start, end=item.end, reason=f"'{text}'{_NOT_SHORTHAND}"))

    def flag_item(self, item: Item, reason: str) -> None:
        """Record an unresolved item."""
        self.flag(item.start, item.end, reason)

    def flag_missing(self, reason: str) -> None:
        """Record a missing part, as an empty span at the end of the line."""
        n = len(self.line)
        self.unresolved.append(Unresolved(token="", start=n, end=n, reason=reason))

    # -- driver -------------------------------------------------------------------------------------------
    def run(self) -> ExpandedLine:
        """Build the expanded line."""
        self._resolve_name()
        segments = self._split_segments()
        self._choose_presentation(segments[0])
        dose_unit = self._dose_unit()
        built = [self._segment(s, dose_unit, first=n == 0) for n, s in enumerate(segments)]
        built = [b for b in built if b is not None]
        quantity = self._quantity(built, dose_unit) if self.resolved is not None else None
        timing = tm.timing_dict(built, dose_unit, self.days_per_month)
        days = self._total_days(built)
        freq = self._frequency_text(built)
        instructions = (
            tm.instructions_text(built, dose_unit, self.route, self.extras, self.days_per_month)
            if self.presentation is not None
            else None  # directions are written only for a known medicine in a known form
        )
        if "timing.when" in self.defaulted:
            self.defaulted.append("instructions")
        self.unresolved.sort(key=lambda u: (u.start, u.end))
        return ExpandedLine(
            generic_name=self.resolved.display_name if self.resolved else None,
            strength=self.strength.label if self.strength else None,
            dosage_form=FORMS[self.form].label if self.form else None,
            route=self.route,
            frequency=freq,
            duration_days=days,
            quantity=quantity,
            instructions=instructions,
            rxnorm_code=self.resolved.rxnorm_code if self.resolved else None,
            timing=timing,
            defaulted=tuple(dict.fromkeys(self.defaulted)),
            unresolved=tuple(self.unresolved),
            dispense=self._dispense(),
        )

    def _packs(self) -> tuple[Pack, ...]:
        """The packs of the chosen presentation and strength, the named brand's first (computed once)."""
        if self._packs_found is None:
            if self.resolved is None or self.presentation is None:
                return ()
            brand = self.resolved.matched if self.resolved.matched_as == "brand" else None
            strength = self.strength.label if self.strength else None
            self._packs_found = self.formulary.packs_for(self.resolved.key, self.presentation, strength, brand=brand)
        return self._packs_found

    def _dispense(self) -> Dispense | None:
        if self.resolved is None or self.presentation is None:
            return None
        strength = self.strength.label if self.strength else None
        return dispense(
            self.presentation, self.strength, self._packs(), total=self.total, typed_quantity=self.quantity_typed,
            why_no_total=self.why_no_total, assumptions=self.assumptions,
            label=" ".join(x for x in (self.resolved.display_name, strength, FORMS[self.presentation.form].label) if x),
        )  # fmt: skip

    def _resolve_name(self) -> None:
        hit = self.syntax.name
        if hit is None:
            missing = self.syntax.name_missing
            at = missing.start if missing else 0
            self.unresolved.append(Unresolved(token="", start=at, end=at,
                                              reason="no medicine name at the start of the line"))  # fmt: skip
            return
        look = hit.lookup
        if look.status == "found" and look.resolved is not None:
            self.resolved = look.resolved
            self.entry = self.formulary.get_entry(look.resolved.key)
            return
        self.flag(hit.start, hit.end, look.reason or f"'{hit.typed}' is not in the formulary")

    def _split_segments(self) -> list[_Seg]:
        segs = [_Seg()]
        for item in self.syntax.items:
            if item.kind == "then":
                segs.append(_Seg())
            elif item.kind == "unknown_word":
                self.flag_word(item)
            elif item.kind == "unknown":
                self.flag_item(item, str(item.value))
            else:
                segs[-1].items.append(item)
        if len(segs) > 1 and not segs[-1].items:
            self.flag_missing("'then' is not followed by a schedule")
            segs.pop()
        return segs

    # -- presentation, strength, form, route ---------------------------------------------------------------
    def _choose_presentation(self, seg: _Seg) -> None:
        forms = [i for i in [*self._leading_forms(), *seg.items] if i.kind == "form"]
        typed_form = self._typed_form(forms)
        strength_item = self._strength_candidate(seg)
        routes = [i for i in seg.items if i.kind == "route"]
        entry = self.entry
        if entry is None:
            self.form = typed_form
            self._typed_route(routes, None)
            if strength_item is not None:
                self._bare_number_without_drug(strength_item, seg)
            return
        pres = [p for p in entry.presentations if _form_fits(p.form, typed_form)]
        if typed_form is None:
            pres = [p for p in pres if p.form != "tablet_mr"] or (
                list(entry.presentations) if all(p.form == "tablet_mr" for p in entry.presentations) else []
            )
        if not entry.presentations:
            at = self.syntax.name.end if self.syntax.name else 0
            self.flag(at, at, f"{_name(entry)} has no dosage form in the formulary yet; it can be recorded for "
                              "interaction checks but not prescribed from shorthand")  # fmt: skip
            return
        if not pres:
            where = forms[0] if forms else None
            start, end = (where.start, where.end) if where else (0, 0)
            label = FORMS[typed_form].label if typed_form else "the form typed"
            self.flag(start, end, f"{_name(entry)} is not in the formulary as {label}")
            return
        if strength_item is not None and self._match_strength(strength_item, pres, seg):
            pass
        elif len({p.form for p in pres}) > 1:
            self.flag(self.syntax.name.end if self.syntax.name else 0, self.syntax.name.end if self.syntax.name else 0,
                      f"{_name(entry)} comes as {_or([FORMS[p.form].label for p in pres])}; type the form "
                      "(tab, syp …)")  # fmt: skip
            return
        elif self.presentation is None:
            self._default_strength(pres[0])
        if self.presentation is None:
            return
        if typed_form is None:
            self.defaulted.append("dosage_form")
        self.form = self.presentation.form
        self._typed_route(routes, self.presentation)

    def _leading_forms(self) -> list[Item]:
        return [i for i in self.syntax.items[:1] if i.kind == "form" and self.syntax.name is not None
                and i.end <= self.syntax.name.start]  # fmt: skip

    def _typed_form(self, forms: list[Item]) -> str | None:
        typed: str | None = None
        for item in forms:
            value = str(item.value)
            if typed is None:
                typed = value
            elif {value, typed} == {"tablet", "tablet_mr"}:
                typed = "tablet_mr"
            elif value != typed:
                self.flag_item(item, f"a second form ({FORMS[value].label}) on one line")
        return typed

    def _strength_candidate(self, seg: _Seg) -> Item | None:
        """The number right after the name (or after a form word right after it)."""
        name_end = self.syntax.name.end if self.syntax.name else None
        for item in seg.items:
            if item.kind == "form":
                continue
            if item.kind == "number" and name_end is not None:
                between = self.line[name_end : item.start]
                if between.strip() == "" or all(
                    i.kind == "form" for i in seg.items if name_end <= i.start < item.start
                ):
                    return item
            return None
        return None

    def _match_strength(self, item: Item, pres: list[Presentation], seg: _Seg) -> bool:
        key, _value, unit = cast(_NumberValue, item.value)
        key = str(key).casefold()
        hits = [(p, s) for p in pres for s in p.strengths if key in s.typed_keys()
                and (unit is None or _same_unit(str(unit), s))]  # fmt: skip
        forms = {p.form for p, _ in hits}
        if len(forms) > 1:
            self.flag_item(item, f"{item.text} fits {_or(sorted(FORMS[f].label for f in forms))}; type the form")
            item.kind = "used"
            return True
        if hits:
            self.presentation, self.strength = hits[0]
            item.kind = "used"
            return True
        return False

    def _default_strength(self, p: Presentation) -> None:
        self.presentation = p
        if len(p.strengths) == 1:
            self.strength = p.strengths[0]
            self.defaulted.append("strength")
        elif len(p.strengths) > 1 and not self._typed_a_strength():
            at = self.syntax.name.end if self.syntax.name else 0
            self.unresolved.append(Unresolved(
                token="", start=at, end=at,
                reason=f"strength missing: {_name(self.entry)} {FORMS[p.form].label} comes as "
                       f"{_or([s.label for s in p.strengths])}",
            ))  # fmt: skip

    def _typed_a_strength(self) -> bool:
        """True when a number that can only be a strength was typed (it is reported on its own)."""
        for item in self.syntax.items:
            if item.kind != "number":
                continue
            key, value, unit = cast(_NumberValue, item.value)
            if unit in ("mg", "mcg", "iu", "%") or (unit is None and ("/" in key or value > 4)):
                return True
        return False

    def _bare_number_without_drug(self, item: Item, seg: _Seg) -> None:
        _key, _value, unit = cast(_NumberValue, item.value)
        if unit in STRENGTH_UNITS and unit not in ("g", "ml"):
            item.kind = "used"  # strength typed for an unknown drug: kept out of the dose

    def _typed_route(self, routes: list[Item], p: Presentation | None) -> None:
        implied = p.effective_route if p is not None else None
        typed = None
        for item in routes:
            value = str(item.value)
            if implied is not None and value != implied:
                self.flag_item(item, f"route {value} does not fit {FORMS[p.form].label if p else 'this form'} "
                                     f"({implied})")  # fmt: skip
            elif typed is not None and value != typed:
                self.flag_item(item, "a second route on one line")
            else:
                typed = value
        self.route = typed or implied
        if typed is None and implied is not None:
            self.defaulted.append("route")

    def _dose_unit(self) -> str:
        if self.presentation is not None:
            return self.presentation.effective_dose_unit
        if self.form is not None:
            return FORMS[self.form].dose_unit
        return "dose"

    # -- segments -----------------------------------------------------------------------------------------
    def _segment(self, seg: _Seg, dose_unit: str, *, first: bool) -> tm.Segment:
        builder = _SegmentBuilder(self, dose_unit, first=first)
        for item in seg.items:
            builder.add(item)
        return builder.finish()

    def _total_days(self, built: Sequence[tm.Segment]) -> int | None:
        total = 0
        for seg in built:
            days = seg.duration_days(self.days_per_month)
            if days is None and seg.count is None:
                return None
            total += days or 0
        return total or None

    def _frequency_text(self, built: Sequence[tm.Segment]) -> str | None:
        if len(built) == 1:
            return tm.frequency_text(built[0])
        steps = []
        for seg in built:
            text = (tm.frequency_text(seg) or "").lower()
            days = seg.duration_days(self.days_per_month)
            steps.append(text + (f" for {days} days" if days else ""))
        return "Tapering: " + ", then ".join(steps)

    # -- quantity -----------------------------------------------------------------------------------------
    def _quantity(self, built: Sequence[tm.Segment], dose_unit: str) -> int | None:
        total = self._total(built, dose_unit)
        if self.quantity_typed is not None:
            return math.ceil(self.quantity_typed)
        if self.presentation is None:
            return None  # the line already says what is missing
        # A reason is added only to a line that is otherwise understood: one missing part at a time.
        say = self.flag_missing if not self.unresolved else _ignore
        form = FORMS[self.presentation.form]
        content = self._pack_content()
        if form.dispense == "typed" and content is None:
            say(f"the quantity of {_article(form.label)} is not computed from the dose; type it (qty 1)")
            return None
        if total is None:
            say(self.why_no_total or "the quantity cannot be computed; type it (qty 10)")
            return None
        if form.dispense in ("count", "mass"):
            return math.ceil(total)
        if content is not None:
            return math.ceil(total / content)
        say(f"the pack size of this {form.label} is not in the formulary; type a quantity (qty 1)")
        return None

    def _pack_content(self) -> Decimal | None:
        packs = self._packs()
        return pack_content(packs[0], self.presentation, self.strength) if packs and self.presentation else None

    def _total(self, built: Sequence[tm.Segment], dose_unit: str) -> Decimal | None:
        """What the line needs in the dose unit (summed over taper steps); None with `why_no_total` set."""
        if self.presentation is None:
            return None
        if FORMS[self.presentation.form].dispense == "typed" and self._pack_content() is None:
            self.why_no_total = f"{FORMS[self.presentation.form].label} is not counted from the dose"
            return None
        total = Decimal(0)
        for seg in built:
            days = seg.duration_days(self.days_per_month)
            if seg.count is None and days is None:
                self.why_no_total = "no duration: add one (x 30d, 2/52) or a quantity (qty 30)"
                return None
            units = tm.units_needed(seg, days, self.days_per_month)
            if units is None:
                if seg.as_needed:
                    self.why_no_total = "as needed without a maximum per day: add 'max 4/d' or a quantity (qty 10)"
                elif seg.dose is None and seg.slots is None:
                    self.why_no_total = f"dose missing: type it in {dose_unit} (e.g. 5{dose_unit})"
                else:
                    self.why_no_total = "the quantity cannot be computed; type it (qty 10)"
                return None
            if seg.as_needed:
                most = Decimal(seg.max_per_day) if seg.max_per_day is not None else seg.per_day()
                shown = format(most.normalize(), "f") if most is not None else "?"
                self.assumptions.append(f"as needed: counted at the most allowed ({shown} a day) on every day")
            total += units
        if len(built) > 1:
            self.assumptions.append(f"taper: the sum of its {len(built)} steps")
        self.total = total
        return total


class _SegmentBuilder:
    """Collects one segment's items, checks them against each other and the entry, builds a `tm.Segment`."""

    COUNT_UNITS = frozenset({"tablet", "capsule", "sachet", "suppository", "puff", "drop", "spray"})

    def __init__(self, sem: _Semantics, dose_unit: str, *, first: bool) -> None:
        self.sem = sem
        self.dose_unit = dose_unit
        self.first = first
        self.dose: Decimal | None = None
        self.dose_item: Item | None = None
        self.slots: tuple[Decimal, ...] | None = None
        self.slots_item: Item | None = None
        self.freq: tuple[int, Decimal, str] | None = None
        self.freq_item: Item | None = None
        self.times: list[tuple[str, Item]] = []
        self.meal: tuple[str, Item] | None = None
        self.days: list[str] = []
        self.day_item: Item | None = None
        self.prn: Item | None = None
        self.stat: Item | None = None
        self.max: Item | None = None
        self.reason: Item | None = None
        self.duration: tuple[int, tm.DurationUnit] | None = None
        self.duration_item: Item | None = None
        self.extra_text: list[str] = []

    # -- collecting ---------------------------------------------------------------------------------------
    def add(self, item: Item) -> None:
        """Take one item of the segment."""
        handler = getattr(self, f"_on_{item.kind}", None)
        if handler is not None:
            handler(item)

    def _on_number(self, item: Item) -> None:
        key, value, unit = cast(_NumberValue, item.value)
        if unit is None:
            if (
                str(key).endswith("k")
                or "/" in str(key)
                or value > 4
                or value <= 0
                or self.dose_unit not in self.COUNT_UNITS
            ):
                if self.sem.entry is None:
                    reason = f"'{item.text}' can only be read against a known medicine"
                elif self.first and self.dose is None:
                    reason = f"{item.text} is not a strength listed for {_name(self.sem.entry)}" + _listed(
                        self.sem.presentation
                    )
                else:
                    reason = f"'{item.text}': a number without a unit"
                self.sem.flag_item(item, reason)
                return
            self._set_dose(item, Decimal(value))
            return
        self._unit_dose(item, Decimal(value), str(unit))

    def _on_dose(self, item: Item) -> None:
        value, unit = cast(tuple[Decimal, str], item.value)
        self._unit_dose(item, Decimal(value), str(unit))

    def _unit_dose(self, item: Item, value: Decimal, unit: str) -> None:
        canonical = DOSE_UNITS.get(unit) or STRENGTH_UNITS.get(unit) or unit
        want = self.dose_unit
        if canonical in ("tsp", "tbsp"):
            self.sem.flag_item(item, "spoon measures cannot be counted exactly; type the dose in ml or g")
            return
        if want == "g" and canonical == "mg":
            value, canonical = value / 1000, "g"
        if canonical == want or want == "dose" or (canonical == "tablet" and want == "tablet"):
            self._set_dose(item, value)
            return
        if canonical in ("mg", "mcg", "IU", "%") and self.sem.entry is not None and self.first and self.dose is None:
            self.sem.flag_item(item, f"{item.text} is not a strength listed for {_name(self.sem.entry)}"
                                     + _listed(self.sem.presentation))  # fmt: skip
            return
        self.sem.flag_item(item, f"a dose in {canonical} does not fit {_form_label(self.sem.form)} (doses in {want})")

    def _set_dose(self, item: Item, value: Decimal) -> None:
        if value <= 0 or value > MAX_SLOT_DOSE * 100:
            self.sem.flag_item(item, f"dose {item.text} is out of range")
        elif self.dose is not None:
            self.sem.flag_item(item, "a second dose in one schedule")
        else:
            self.dose, self.dose_item = value, item

    def _on_slots(self, item: Item) -> None:
        values, unit = cast(tuple[tuple[Decimal, ...], str | None], item.value)
        if self.slots is not None:
            self.sem.flag_item(item, "a second slot pattern in one schedule; use 'then' for a taper")
        elif not any(values):
            self.sem.flag_item(item, "the slot pattern gives no dose")
        elif any(v > MAX_SLOT_DOSE or v < 0 for v in values):
            self.sem.flag_item(item, "a slot dose is out of range")
        elif unit is not None and unit != self.dose_unit and self.dose_unit != "dose":
            self.sem.flag_item(item, f"a dose in {unit} does not fit {_form_label(self.sem.form)}")
        else:
            self.slots, self.slots_item = tuple(values), item

    def _on_freq(self, item: Item) -> None:
        f, p, u = cast(tuple[int, Decimal, str], item.value)
        if item.text.lower() in ("od", "o.d.", "o.d") and self.sem.form in ("eye_drops", "ear_drops"):
            self.sem.flag_item(item, "'od' on drops can mean right eye or once daily; write 'right eye' and "
                                     "'once daily'")  # fmt: skip
            return
        value = (int(f), Decimal(p), str(u))
        if self.freq is not None and self.freq != value:
            self.sem.flag_item(item, f"'{item.text}' disagrees with '{self.freq_item.text if self.freq_item else ''}'")
        elif value[0] <= 0 or value[1] <= 0 or value[0] > 24:
            self.sem.flag_item(item, "frequency out of range")
        else:
            self.freq, self.freq_item = value, item

    def _on_when(self, item: Item) -> None:
        codes = item.value
        assert isinstance(codes, tuple)
        code = str(codes[0])
        if len(codes) > 1:
            self.extra_text.append(str(codes[1]))
        if code in tm.MEAL_CODES:
            if self.meal is not None and self.meal[0] != code:
                self.sem.flag_item(item, f"'{item.text}' disagrees with '{self.meal[1].text}'")
            else:
                self.meal = (code, item)
        elif all(c != code for c, _ in self.times):
            self.times.append((code, item))

    def _on_anupana(self, item: Item) -> None:
        self.extra_text.append(str(item.value))

    def _on_quote(self, item: Item) -> None:
        if str(item.value).strip():
            self.sem.extras.append(str(item.value).strip())

    def _on_prn(self, item: Item) -> None:
        self.prn = item

    def _on_stat(self, item: Item) -> None:
        self.stat = item

    def _on_max(self, item: Item) -> None:
        n = Decimal(str(item.value))
        if self.max is not None or n <= 0 or n != n.to_integral_value() or n > 24:
            self.sem.flag_item(item, "max per day must be a whole number from 1 to 24, given once")
        else:
            self.max = item

    def _on_for(self, item: Item) -> None:
        self.reason = item

    def _on_duration(self, item: Item) -> None:
        raw, unit = cast(tuple[Decimal, tm.DurationUnit], item.value)
        n = Decimal(raw)
        if self.duration is not None:
            self.sem.flag_item(item, "a second duration in one schedule")
            return
        if n <= 0 or n != n.to_integral_value():
            self.sem.flag_item(item, "a duration must be a whole number of days, weeks or months")
            return
        duration = (int(n), unit)
        days = tm.Segment(duration=duration).duration_days(self.sem.days_per_month) or 0
        if days > MAX_DURATION_DAYS:
            self.sem.flag_item(item, f"{days} days is more than a year; prescribe at most {MAX_DURATION_DAYS} days")
            return
        self.duration, self.duration_item = duration, item

    def _on_open(self, item: Item) -> None:
        self.sem.extras.append("continue until review")

    def _on_qty(self, item: Item) -> None:
        n = Decimal(str(item.value))
        if self.sem.quantity_typed is not None or n <= 0 or n > 100000:
            self.sem.flag_item(item, "a quantity must be a positive number, given once")
        else:
            self.sem.quantity_typed = n

    def _on_day(self, item: Item) -> None:
        if str(item.value) not in self.days:
            self.days.append(str(item.value))
            self.day_item = self.day_item or item

    def _on_form(self, item: Item) -> None:
        if not self.first:
            self.sem.flag_item(item, "the form is given once, in the first part of the line")

    def _on_route(self, item: Item) -> None:
        if not self.first:
            self.sem.flag_item(item, "the route is given once, in the first part of the line")

    # -- building -----------------------------------------------------------------------------------------
    def finish(self) -> tm.Segment:
        """Check the collected items against each other and build the segment."""
        codes, freq = self._slot_codes()
        freq = self._merge_frequency(codes, freq)
        codes = self._merge_times(codes)
        if freq is None and not self.stat:
            if codes:
                freq = (len(codes), Decimal(1), "d")
            elif self.days:
                freq = (len(self.days), Decimal(1), "wk")
            elif not self.prn:
                self.sem.flag_missing("how often? add od, bd, tds, 1-0-1, q6h, weekly …")
        if freq is not None and self.days and (freq[2] != "wk" or freq[0] != len(self.days)) and self.day_item:
            self.sem.flag_item(self.day_item, "a day of the week fits only a weekly schedule")
        if freq is not None and codes and freq[2] in ("d", "wk") and freq[0] != len(codes) and self.times:
            self.sem.flag_item(self.times[0][1], f"'{self.times[0][1].text}' does not fit {freq[0]} times per period")
        when = self._apply_meal(codes)
        dose, slots = self._dose()
        self._check_prn_parts()
        if self.stat is not None:
            if freq is not None and self.freq_item is not None:
                self.sem.flag_item(self.freq_item, "'stat' is a single dose; a frequency does not fit")
            if self.duration_item is not None:
                self.sem.flag_item(self.duration_item, "'stat' is a single dose; a duration does not fit")
        return tm.Segment(
            frequency=freq[0] if freq and not self.stat else None,
            period=freq[1] if freq and not self.stat else None,
            period_unit=freq[2] if freq and not self.stat else None,  # type: ignore[arg-type]
            when=tm.sort_when(when) if slots is None else tuple(when),
            day_of_week=tuple(d for d in tm.DAYS if d in self.days),
            count=1 if self.stat else None,
            dose=dose,
            slots=slots,
            as_needed=self.prn is not None,
            as_needed_for=str(self.reason.value) if self.reason is not None and self.prn is not None else None,
            max_per_day=int(Decimal(str(self.max.value))) if self.max is not None and self.prn is not None else None,
            duration=self.duration if not self.stat else None,
            extra_when_text=tuple(self.extra_text),
        )

    def _slot_codes(self) -> tuple[list[str], tuple[int, Decimal, str] | None]:
        if self.slots is None:
            return [], None
        positions = tm.SLOT_WHEN[len(self.slots)]
        codes = [positions[k] for k, v in enumerate(self.slots) if v]
        return codes, (len(codes), Decimal(1), "d")

    def _merge_frequency(
        self, codes: list[str], slot_freq: tuple[int, Decimal, str] | None
    ) -> tuple[int, Decimal, str] | None:
        if slot_freq is None:
            return self.freq
        if self.freq is not None and self.freq != slot_freq and self.freq_item is not None:
            self.sem.flag_item(self.freq_item, f"'{self.freq_item.text}' disagrees with the slot pattern "
                                               f"'{self.slots_item.text if self.slots_item else ''}'")  # fmt: skip
        return slot_freq

    def _merge_times(self, codes: list[str]) -> list[str]:
        typed = [c for c, _ in self.times]
        if self.slots is None:
            return typed
        for code, item in self.times:
            if code in codes:
                continue
            if code == "HS" and codes == ["NIGHT"]:
                codes = ["HS"]
            elif code in tm.SPECIFIC_MEAL.values() and len(codes) == 1 and tm.MEAL_OF_TIME.get(codes[0]) == code[-1]:
                codes = [code]
            else:
                self.sem.flag_item(item, f"'{item.text}' does not fit the slot pattern")
        return codes

    def _apply_meal(self, codes: list[str]) -> list[str]:
        if self.meal is not None:
            combined = self._combine(codes, self.meal[0])
            if combined is None:
                self.sem.flag_item(self.meal[1], f"'{self.meal[1].text}' cannot be combined with the times given")
                return codes
            return combined
        default = self.sem.entry.timing if self.sem.entry is not None else None
        if default is not None and not self.prn and not self.stat:
            meal = [c for c in default.when if c in tm.MEAL_CODES]
            if len(meal) == 1:
                combined = self._combine(codes, meal[0])
                if combined is not None:
                    self.sem.defaulted.append("timing.when")
                    return combined
        return codes

    def _combine(self, codes: list[str], meal: str) -> list[str] | None:
        if not codes:
            return [meal]
        if self.slots is not None and len(self.slots) == 4:
            return None
        out = []
        for code in codes:
            letter = tm.MEAL_OF_TIME.get(code)
            if letter is None:
                return None
            out.append(tm.SPECIFIC_MEAL[(meal, letter)])
        return out

    def _dose(self) -> tuple[Decimal | None, tuple[Decimal, ...] | None]:
        slots = self.slots
        dose = self.dose
        if slots is not None:
            nonzero = {v for v in slots if v}
            if (
                dose is not None
                and (len(nonzero) != 1 or dose not in nonzero)
                and self.dose_item is not None
                and dose != 1
            ):
                self.sem.flag_item(self.dose_item, "the dose disagrees with the slot pattern")
            return (nonzero.pop() if len(nonzero) == 1 else None), slots
        if dose is None and self.dose_unit in self.COUNT_UNITS - {"puff", "drop", "spray"}:
            self.sem.defaulted.append("timing.dose")
            return Decimal(1), None
        return dose, None

    def _check_prn_parts(self) -> None:
        if self.prn is None:
            if self.max is not None:
                self.sem.flag_item(self.max, "a maximum per day belongs to an as-needed (sos) line")
            if self.reason is not None:
                self.sem.flag_item(self.reason, "'for …' gives the reason of an as-needed (sos) line")


# ======================================================================================================
# Small helpers
# ======================================================================================================
def _ignore(reason: str) -> None:
    del reason


def _name(entry: Entry | None) -> str:
    if entry is None:
        return "this medicine"
    return entry.generic.upper() if isinstance(entry, Drug) else _display(entry)


def _display(entry: Entry) -> str:
    from shared.rx.formulary import display_name

    return display_name(entry)


def _listed(p: Presentation | None) -> str:
    if p is None or not p.strengths:
        return ""
    return " (" + ", ".join(s.label for s in p.strengths) + ")"


def _or(items: Sequence[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _form_label(form: str | None) -> str:
    return FORMS[form].label if form else "this form"


def _form_fits(form: str, typed: str | None) -> bool:
    if typed is None or typed == form:
        return True
    if {form, typed} <= {"tablet", "vati"} or {form, typed} <= {"syrup", "suspension"}:
        return True  # "tab" for a vati and "syp" for a suspension are how the forms are typed
    return typed == "oral_drops" and form.endswith("_drops")


def _same_unit(unit: str, strength: Strength) -> bool:
    canonical = STRENGTH_UNITS.get(unit) or DOSE_UNITS.get(unit) or unit
    return canonical.casefold() == strength.amounts[0][1].casefold()


def _article(label: str) -> str:
    return ("an " if label[:1] in "aeiou" else "a ") + label
