"""Hypothesis strategies and independent little-endian builders for GATT test payloads."""

from __future__ import annotations

import struct
from datetime import datetime

from hypothesis import strategies as st

from shared.gatt.sfloat import MedFloat, MedValue, Special, encode_float, encode_sfloat

SPECIALS = st.sampled_from(list(Special))


def _fits_sfloat(v: MedFloat) -> bool:
    try:
        encode_sfloat(v)
    except ValueError:
        return False
    return True


def _fits_float(v: MedFloat) -> bool:
    try:
        encode_float(v)
    except ValueError:
        return False
    return True


SFLOAT_NUMBERS = st.builds(MedFloat, st.integers(-2048, 2047), st.integers(-8, 7)).filter(_fits_sfloat)
FLOAT_NUMBERS = st.builds(MedFloat, st.integers(-(2**23), 2**23 - 1), st.integers(-128, 127)).filter(_fits_float)
SFLOAT_VALUES: st.SearchStrategy[MedValue] = st.one_of(SFLOAT_NUMBERS, SPECIALS)
FLOAT_VALUES: st.SearchStrategy[MedValue] = st.one_of(FLOAT_NUMBERS, SPECIALS)
DATETIMES = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=0)
)


def sfloat_bytes(value: MedValue) -> bytes:
    return struct.pack("<H", encode_sfloat(value))


def float_bytes(value: MedValue) -> bytes:
    return struct.pack("<I", encode_float(value))


def date_time_bytes(d: datetime) -> bytes:
    return struct.pack("<HBBBBB", d.year, d.month, d.day, d.hour, d.minute, d.second)


def same(decoded_value: object, sent: MedValue) -> bool:
    """A decoded `Quantity` carries exactly the sent SFLOAT/FLOAT (number with precision, or the special)."""
    from shared.gatt.readings import Quantity

    assert isinstance(decoded_value, Quantity)
    if isinstance(sent, Special):
        return decoded_value.value is None and decoded_value.special is sent
    return (
        decoded_value.special is None
        and decoded_value.value == sent.decimal
        and (decoded_value.mantissa, decoded_value.exponent) == (sent.mantissa, sent.exponent)
    )
