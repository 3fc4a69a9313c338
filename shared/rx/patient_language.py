"""Patient-language directions: a medicine line's English frequency, duration and instructions → Hindi.

The wording comes only from `shared/knowledge/instructions_hi.yaml` (versioned, a source and a review note per
entry). The English is split into tokens and covered by the longest known phrases; a phrase may hold a number
(`{n}`), copied unchanged. If any word of a field has no entry, that field is not translated at all: the result
is an explicit `NotTranslated` naming the unknown words, never a partial or guessed sentence. The printed
English stays the instruction either way; the Hindi is an aid for the patient.

Hindi puts the verb last, so a leading "Take"/"Apply" is moved to the end ("Take 1 tablet twice daily" →
"1 गोली दिन में दो बार लें"). Slot patterns ("1-0-1", "½-0-1", four slots) become the time-of-day words of the
non-zero positions with their amounts ("सुबह 1, रात 1").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml

KNOWLEDGE_FILE = "instructions_hi.yaml"
_NUMBER = r"(?:\d+(?:\.\d+)?[½¼¾]?|[½¼¾])"
_TOKEN = re.compile(rf"{_NUMBER}(?:-{_NUMBER}){{2,3}}|{_NUMBER}|[a-z]+(?:'[a-z]+)?|[,;()]|\S")
_SLOT = re.compile(rf"^{_NUMBER}(?:-{_NUMBER}){{2,3}}$")
_IS_NUMBER = re.compile(rf"^{_NUMBER}$")
_ATTACH_LEFT = {",", ";", ")"}
_ATTACH_RIGHT = {"("}


class InstructionsFileError(ValueError):
    """The instructions knowledge file is malformed (the message names the entry)."""


@dataclass(frozen=True)
class Phrase:
    """One English phrase and its Hindi, with where the wording came from and whether it was reviewed."""

    en: tuple[str, ...]
    hi: str
    kind: str
    source: str
    review: str


@dataclass(frozen=True)
class Catalogue:
    """The loaded knowledge file: phrases (longest first), verbs, printout labels and slot words."""

    version: int
    phrases: tuple[Phrase, ...]
    verbs: Mapping[str, str]
    labels: Mapping[str, str]
    slots: Mapping[int, tuple[str, ...]]


@dataclass(frozen=True)
class Translated:
    """The English `english` rendered as Hindi `text`."""

    english: str
    text: str
    translated: Literal[True] = True


@dataclass(frozen=True)
class NotTranslated:
    """No Hindi for `english`: `unknown` lists the words with no entry. Print the English only."""

    english: str
    unknown: tuple[str, ...]
    translated: Literal[False] = False


Result = Translated | NotTranslated


@dataclass(frozen=True)
class PatientInstructions:
    """Per-field results for one medicine line, in print order (dose+frequency, instructions, duration)."""

    parts: tuple[Result, ...]

    @property
    def complete(self) -> bool:
        """True when every field was translated."""
        return all(p.translated for p in self.parts)

    @property
    def text(self) -> str:
        """The Hindi of the fields that were translated, joined by commas ("" when none were)."""
        return ", ".join(p.text for p in self.parts if isinstance(p, Translated))

    @property
    def missing(self) -> tuple[str, ...]:
        """The English fields that were not translated."""
        return tuple(p.english for p in self.parts if isinstance(p, NotTranslated))


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _normalise(text: str) -> str:
    # NFKC would turn "½" into "1⁄2"; keep the vulgar fractions the pad prints
    text = "".join(c if c in "½¼¾" else unicodedata.normalize("NFKC", c) for c in text).lower().strip()
    text = text.replace("\u2014", ",").replace("\u2013", ",")
    return text.rstrip(".").strip()


def _entry(raw: object, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("hi", "source", "review")):
        raise InstructionsFileError(f"{where}: needs string fields hi, source and review")
    return {str(k): str(v) for k, v in raw.items()}


def parse_catalogue(doc: object) -> Catalogue:
    """Build a `Catalogue` from the parsed YAML document.

    Args:
        doc: the result of `yaml.safe_load` on the knowledge file.

    Returns:
        The catalogue, phrases sorted longest first so the longest match wins.

    Raises:
        InstructionsFileError: a field is missing, a source is not declared or a slot list is malformed.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise InstructionsFileError("the file needs an integer `version`")
    sources = doc.get("sources") or {}
    phrases: list[Phrase] = []
    for i, raw in enumerate(doc.get("phrases") or []):
        entry = _entry(raw, f"phrases[{i}]")
        if "en" not in entry or entry["source"] not in sources:
            raise InstructionsFileError(f"phrases[{i}]: needs `en` and a `source` listed under `sources`")
        en = tuple(_tokens(_normalise(entry["en"].replace("{n}", "0"))))
        en = tuple("{n}" if entry["en"].find("{n}") >= 0 and t == "0" else t for t in en)
        phrases.append(Phrase(en, entry["hi"], entry.get("kind", ""), entry["source"], entry["review"]))
    phrases.sort(key=lambda p: -len(p.en))
    verbs = {_entry(v, f"verbs[{i}]")["en"]: str(v["hi"]) for i, v in enumerate(doc.get("verbs") or [])}
    labels = {_entry(v, f"labels[{i}]")["key"]: str(v["hi"]) for i, v in enumerate(doc.get("labels") or [])}
    slots: dict[int, tuple[str, ...]] = {}
    for key, words in (doc.get("slots") or {}).items():
        if not isinstance(words, list) or len(words) != int(key) or not all(isinstance(w, str) for w in words):
            raise InstructionsFileError(f"slots[{key}]: needs {key} words")
        slots[int(key)] = tuple(words)
    return Catalogue(doc["version"], tuple(phrases), verbs, labels, slots)


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The catalogue shipped in `shared/knowledge/instructions_hi.yaml` (read once)."""
    text = resources.files("shared.knowledge").joinpath(KNOWLEDGE_FILE).read_text(encoding="utf-8")
    return parse_catalogue(yaml.safe_load(text))


def _match(phrase: Phrase, tokens: Sequence[str], start: int) -> str | None:
    if start + len(phrase.en) > len(tokens):
        return None
    number: str | None = None
    for want, got in zip(phrase.en, tokens[start : start + len(phrase.en)], strict=True):
        if want == "{n}":
            if not _IS_NUMBER.match(got):
                return None
            number = got
        elif want != got:
            return None
    return phrase.hi.replace("{n}", number) if number is not None else phrase.hi


def _slot_text(token: str, catalogue: Catalogue, *, after_dose: bool) -> str | None:
    amounts = token.split("-")
    words = catalogue.slots.get(len(amounts))
    if words is None:
        return None
    taken = [(word, amount) for word, amount in zip(words, amounts, strict=True) if amount.strip("0.") != ""]
    and_word = next((p.hi for p in catalogue.phrases if p.en == ("and",)), None)
    if after_dose and and_word and all(amount == "1" for _, amount in taken):
        # "5 g 0-0-1": the dose already says how much, so name only the times ("5 ग्राम रात")
        return f" {and_word} ".join(word for word, _ in taken) or None
    return ", ".join(f"{word} {amount}" for word, amount in taken) or None


def _join(pieces: Sequence[str]) -> str:
    out = ""
    for piece in pieces:
        if not out or piece in _ATTACH_LEFT or out.endswith(tuple(_ATTACH_RIGHT)):
            out += piece
        else:
            out += " " + piece
    return out


def translate(english: str, catalogue: Catalogue | None = None) -> Result:
    """Translate one English direction ("Take 1 tablet twice daily after meals") into Hindi.

    Args:
        english: the text as printed.
        catalogue: the phrases to use (default: the shipped knowledge file).

    Returns:
        `Translated` when every word is covered by an entry, else `NotTranslated` with the uncovered words.
    """
    cat = catalogue or default_catalogue()
    tokens = _tokens(_normalise(english))
    verb: str | None = None
    if tokens and tokens[0] in cat.verbs:
        verb = cat.verbs[tokens[0]]
        tokens = tokens[1:]
    pieces: list[str] = []
    unknown: list[str] = []
    after_dose = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _ATTACH_LEFT or token in _ATTACH_RIGHT:
            pieces.append(token)
            i += 1
            continue
        if _SLOT.match(token):
            slot = _slot_text(token, cat, after_dose=after_dose)
            if slot:
                pieces.append(slot)
            else:
                unknown.append(token)
            i += 1
            continue
        hit = next(((p, h) for p in cat.phrases if (h := _match(p, tokens, i)) is not None), None)
        if hit is None:
            unknown.append(token)
            i += 1
            continue
        pieces.append(hit[1])
        after_dose = hit[0].kind == "dose"
        i += len(hit[0].en)
    if verb is not None:
        pieces.append(verb)
    text = _join(pieces).strip(" ,;")
    if unknown or not text.strip(" ,;()"):
        return NotTranslated(english, tuple(unknown) or (english,))
    return Translated(english, text)


def line_instructions(
    *,
    frequency: str,
    duration_days: int | None,
    instructions: str | None = None,
    dose: str | None = None,
    catalogue: Catalogue | None = None,
) -> PatientInstructions:
    """The Hindi directions of one medicine line, field by field.

    Args:
        frequency: as printed ("Twice daily (morning and night)", "1-0-1").
        duration_days: whole days, printed as "for N days" (None when open-ended).
        instructions: free directions ("Take after meals"); several sentences are translated one by one.
        dose: one administration ("1 tablet"), put in front of the frequency.
        catalogue: the phrases to use (default: the shipped knowledge file).

    Returns:
        One result per field; a field with any unknown word is `NotTranslated`.
    """
    cat = catalogue or default_catalogue()
    head = f"{dose} {frequency}" if dose else frequency
    parts: list[Result] = [translate(head, cat)]
    if instructions:
        sentences = [s for s in re.split(r"(?<=[.!])\s+", instructions.strip()) if s.strip(" .")]
        parts.extend(translate(s, cat) for s in sentences)
    if duration_days is not None:
        parts.append(translate(f"for {duration_days} day{'s' if duration_days != 1 else ''}", cat))
    return PatientInstructions(tuple(parts))


def label(key: str, catalogue: Catalogue | None = None) -> str | None:
    """A Hindi label for the printout ("instructions", "english_only", "followup"), or None when missing."""
    return (catalogue or default_catalogue()).labels.get(key)
