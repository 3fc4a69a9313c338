"""Plain keyword-only factories with sensible defaults (one per record kind)."""

from __future__ import annotations

import itertools
from typing import Any

from shared.ids import format_abha_number, luhn_check_digit

_seq = itertools.count(1)


def valid_abha(n: int | None = None) -> str:
    """A 14-digit ABHA number with a correct Luhn check digit, formatted XX-XXXX-XXXX-XXXX."""
    body = f"91{(n if n is not None else next(_seq)) % 10**11:011d}"
    return format_abha_number(body + str(luhn_check_digit(body)))


def make_patient(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "name": f"Patient {n} Kumar",
        "mobile": f"+9198{n % 10**8:08d}",
        "gender": "F",
        "year_of_birth": 1980 + n % 30,
    }
    body.update(overrides)
    return body
