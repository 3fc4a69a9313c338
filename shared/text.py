"""Text hygiene for free-text fields: Unicode NFC, collapsed whitespace, no control characters.

Names arrive in Devanagari, Tamil, Bengali and other scripts; NFC makes the same name typed on two PCs
compare equal byte for byte. Control characters (NUL above all) are refused rather than stripped, so that
nothing a user typed is silently changed beyond whitespace.
"""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")


def clean_text(value: str) -> str:
    """Normalise a single-line text value.

    Args:
        value: raw text.

    Returns:
        The NFC-normalised text with runs of whitespace collapsed to one space and ends trimmed.

    Raises:
        ValueError: when the text holds control characters (category Cc other than whitespace, or Cs).
    """
    for ch in value:
        cat = unicodedata.category(ch)
        if (cat == "Cc" and not ch.isspace()) or cat == "Cs":
            raise ValueError("must not contain control characters")
    return _WS.sub(" ", unicodedata.normalize("NFC", value)).strip()


def fold_for_search(value: str) -> str:
    """Case-fold and NFC-normalise text for search keys (works for every script, not only Latin)."""
    return unicodedata.normalize("NFC", value).casefold()
