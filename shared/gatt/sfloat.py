"""IEEE-11073-20601 SFLOAT (16-bit) and FLOAT (32-bit): exact decimal numbers or explicit special values.

SFLOAT: bits 15..12 exponent (4-bit two's complement), bits 11..0 mantissa (12-bit two's complement).
FLOAT: bits 31..24 exponent (int8), bits 23..0 mantissa (int24). value = mantissa × 10^exponent.
The specials (NaN, NRes, ±INF, reserved) are whole raw codes with exponent 0 and are tested before any
number is made, so 0x07FF never becomes 2047.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Special(StrEnum):
    """An 11073 special value: not a number, and never stored as one."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "reserved"


@dataclass(frozen=True)
class MedFloat:
    """A finite 11073 number: mantissa × 10^exponent; the exponent carries the precision (2 vs 2.0)."""

    mantissa: int
    exponent: int

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.mantissa).scaleb(self.exponent)


MedValue = MedFloat | Special

SFLOAT_SPECIALS: dict[int, Special] = {
    0x07FF: Special.NAN,
    0x0800: Special.NRES,
    0x07FE: Special.POSITIVE_INFINITY,
    0x0802: Special.NEGATIVE_INFINITY,
    0x0801: Special.RESERVED,
}
FLOAT_SPECIALS: dict[int, Special] = {
    0x007FFFFF: Special.NAN,
    0x00800000: Special.NRES,
    0x007FFFFE: Special.POSITIVE_INFINITY,
    0x00800002: Special.NEGATIVE_INFINITY,
    0x00800001: Special.RESERVED,
}
_SFLOAT_CODES = {special: code for code, special in SFLOAT_SPECIALS.items()}
_FLOAT_CODES = {special: code for code, special in FLOAT_SPECIALS.items()}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def decode_sfloat(raw: int) -> MedValue:
    """Decode a 16-bit SFLOAT code (already assembled little-endian into an int)."""
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"SFLOAT code out of range: {raw:#x}")
    if raw in SFLOAT_SPECIALS:
        return SFLOAT_SPECIALS[raw]
    return MedFloat(mantissa=_signed(raw & 0x0FFF, 12), exponent=_signed(raw >> 12, 4))


def decode_float(raw: int) -> MedValue:
    """Decode a 32-bit FLOAT code (already assembled little-endian into an int)."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ValueError(f"FLOAT code out of range: {raw:#x}")
    if raw in FLOAT_SPECIALS:
        return FLOAT_SPECIALS[raw]
    return MedFloat(mantissa=_signed(raw & 0xFFFFFF, 24), exponent=_signed(raw >> 24, 8))


def _encode(value: MedValue, mantissa_bits: int, exponent_bits: int, specials: dict[Special, int]) -> int:
    if isinstance(value, Special):
        return specials[value]
    m_lo, m_hi = -(1 << (mantissa_bits - 1)), (1 << (mantissa_bits - 1)) - 1
    e_lo, e_hi = -(1 << (exponent_bits - 1)), (1 << (exponent_bits - 1)) - 1
    if not (m_lo <= value.mantissa <= m_hi and e_lo <= value.exponent <= e_hi):
        raise ValueError(f"{value} does not fit")
    raw = ((value.exponent & ((1 << exponent_bits) - 1)) << mantissa_bits) | (
        value.mantissa & ((1 << mantissa_bits) - 1)
    )
    if raw in set(specials.values()):
        raise ValueError(f"{value} has the code of a special value")
    return raw


def encode_sfloat(value: MedValue) -> int:
    """The 16-bit code of a number or special (ValueError if it does not fit or collides with a special)."""
    return _encode(value, 12, 4, _SFLOAT_CODES)


def encode_float(value: MedValue) -> int:
    """The 32-bit code of a number or special (ValueError if it does not fit or collides with a special)."""
    return _encode(value, 24, 8, _FLOAT_CODES)
