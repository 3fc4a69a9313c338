"""`shared.text.clean_text` gives exactly what the per-character rule it replaced gave, on any text."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.text import _NOTE_REFUSED, _REFUSED, clean_text, has_note_control_character

_WS = re.compile(r"\s+")


def reference_clean_text(value: str) -> str:
    """The implementation before the compiled class: `unicodedata.category` of every character."""
    for ch in value:
        cat = unicodedata.category(ch)
        if (cat == "Cc" and not ch.isspace()) or cat == "Cs":
            raise ValueError("must not contain control characters")
    return _WS.sub(" ", unicodedata.normalize("NFC", value)).strip()


def _outcome(fn: object, value: str) -> tuple[str, str]:
    try:
        return "ok", fn(value)  # type: ignore[operator]
    except ValueError as exc:
        return "error", str(exc)


def test_the_refused_class_is_the_rule_over_every_code_point() -> None:
    refused = {
        cp
        for cp in range(sys.maxunicode + 1)
        if (unicodedata.category(chr(cp)) in ("Cc", "Cs"))
        and not (unicodedata.category(chr(cp)) == "Cc" and chr(cp).isspace())
    }
    matched = {cp for cp in range(sys.maxunicode + 1) if _REFUSED.fullmatch(chr(cp))}
    assert matched == refused
    assert 0x00 in matched and 0xD800 in matched and 0x09 not in matched and 0x85 not in matched


def test_the_note_class_is_the_notes_rule_over_every_code_point() -> None:
    """Notes refuse Cc other than line feed, carriage return and tab, and Cs (`shared.records.encounter`)."""
    refused = {
        cp
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in ("Cc", "Cs") and chr(cp) not in "\n\r\t"
    }
    matched = {cp for cp in range(sys.maxunicode + 1) if _NOTE_REFUSED.fullmatch(chr(cp))}
    assert matched == refused
    assert 0x0B in matched and 0x85 in matched and 0xDFFF in matched and 0x0A not in matched


# Text from every category (including Cc, Cs, Zs, Zl, Zp, Mn and unassigned), plus combining sequences that
# NFC composes and the whitespace the collapse handles.
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=sys.maxunicode), max_size=40)
tricky = st.lists(
    st.sampled_from(["a", "e\u0301", "\u0928\u093c", " ", "\t", "\n", "\x1c", "\x85", "\u00a0", "\u2028", "\u3000"])
    | st.characters(categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Mn", "Cf", "Co", "Cn")),
    max_size=20,
).map("".join)


@settings(max_examples=1000)
@given(value=any_text | tricky)
def test_clean_text_matches_the_per_character_rule(value: str) -> None:
    assert _outcome(clean_text, value) == _outcome(reference_clean_text, value)


@settings(max_examples=1000)
@given(value=any_text | tricky)
def test_the_note_check_matches_the_per_character_rule(value: str) -> None:
    expected = any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\r\t" for ch in value)
    assert has_note_control_character(value) is expected


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [("  रमेश \t कुमार\n", "रमेश कुमार"), ("e\u0301", "\u00e9"), ("a\x1cb", "a b"), ("a\x85b", "a b")],
)
def test_whitespace_collapses_and_text_is_nfc(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


@pytest.mark.parametrize("raw", ["a\x00b", "\x7f", "x\x9f", "\ud800"])
def test_control_characters_and_surrogates_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        clean_text(raw)
