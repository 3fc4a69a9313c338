"""Text hygiene for free-text fields: Unicode NFC, collapsed whitespace, no control characters.

Names arrive in Devanagari, Tamil, Bengali and other scripts; NFC makes the same name typed on two PCs
compare equal byte for byte. Control characters (NUL above all) are refused rather than stripped, so that
nothing a user typed is silently changed beyond whitespace.
"""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")

# Every code point the per-character rule refuses: control characters (category Cc) that are not whitespace,
# and surrogates (Cs). Both sets are closed by Unicode's stability policy (Cc is exactly U+0000-U+001F and
# U+007F-U+009F, Cs exactly U+D800-U+DFFF), so the class is built from those ranges once, with the same test
# the rule states; tests/shared/test_text.py checks it against every code point.
_CONTROL_CANDIDATES = [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000)]
_REFUSED = re.compile(
    "["
    + "".join(
        re.escape(chr(cp))
        for cp in _CONTROL_CANDIDATES
        if (unicodedata.category(chr(cp)) == "Cc" and not chr(cp).isspace()) or unicodedata.category(chr(cp)) == "Cs"
    )
    + "]"
)


# A multi-line note keeps its line breaks and tabs but refuses every other control character (and surrogates).
_NOTE_REFUSED = re.compile(
    "["
    + "".join(
        re.escape(chr(cp))
        for cp in _CONTROL_CANDIDATES
        if unicodedata.category(chr(cp)) in ("Cc", "Cs") and chr(cp) not in "\n\r\t"
    )
    + "]"
)


def has_note_control_character(value: str) -> bool:
    """Whether a multi-line note holds a character notes refuse: a control character (Cc) other than line feed,
    carriage return and tab, or a surrogate (Cs). One compiled search instead of a category look-up per
    character (tests/shared/test_text.py checks the class against every code point)."""
    return _NOTE_REFUSED.search(value) is not None


def clean_text(value: str) -> str:
    """Normalise a single-line text value.

    Args:
        value: raw text.

    Returns:
        The NFC-normalised text with runs of whitespace collapsed to one space and ends trimmed.

    Raises:
        ValueError: when the text holds control characters (category Cc other than whitespace, or Cs).
    """
    if _REFUSED.search(value) is not None:
        raise ValueError("must not contain control characters")
    return _WS.sub(" ", unicodedata.normalize("NFC", value)).strip()


def fold_for_search(value: str) -> str:
    """Case-fold and NFC-normalise text for search keys (works for every script, not only Latin)."""
    return unicodedata.normalize("NFC", value).casefold()
