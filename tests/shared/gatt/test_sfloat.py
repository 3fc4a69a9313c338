"""IEEE-11073 SFLOAT/FLOAT: hand-derived vectors (ble_health.md §1.2), specials as specials, round trips."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt.sfloat import (
    FLOAT_SPECIALS,
    SFLOAT_SPECIALS,
    MedFloat,
    MedValue,
    Special,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from tests.shared.gatt.strategies import FLOAT_VALUES, SFLOAT_VALUES

SFLOAT_VECTORS = [
    # raw, decimal text (precision kept), mantissa, exponent
    (0x0050, "80", 80, 0),  # 80 bpm
    (0x0079, "121", 121, 0),  # the value bluetooth-sig 0.6.0 decodes as 1.21e-06
    (0xF014, "2.0", 20, -1),  # HL7 PHD IG example
    (0xE0C8, "2.00", 200, -2),  # HL7 PHD IG example
    (0x0B2E, "-1234", -1234, 0),  # HL7 PHD IG example: 0xB2E is -1234 in 12-bit two's complement
    (0xF16C, "36.4", 364, -1),  # exponent nibble 0xF = -1
    (0xB001, "0.00001", 1, -5),  # nibble 0xB = -5 (glucose kg/L)
    (0xC001, "0.0001", 1, -4),  # nibble 0xC = -4 (glucose mol/L)
    (0x7001, "1E+7", 1, 7),  # largest exponent
    (0x8001, "1E-8", 1, -8),  # smallest exponent
    (0x0FFF, "-1", -1, 0),
    (0x0000, "0", 0, 0),
    (0x17FF, "2.047E+4", 2047, 1),  # 0x7FF mantissa is only special with exponent 0
    (0x1800, "-2.048E+4", -2048, 1),
]


@pytest.mark.parametrize(("raw", "text", "mantissa", "exponent"), SFLOAT_VECTORS)
def test_sfloat_vectors(raw: int, text: str, mantissa: int, exponent: int) -> None:
    value = decode_sfloat(raw)
    assert value == MedFloat(mantissa, exponent)
    assert isinstance(value, MedFloat)
    assert str(value.decimal) == text
    assert value.decimal == Decimal(text)
    assert encode_sfloat(value) == raw


FLOAT_VECTORS = [
    (bytes.fromhex("6c0100ff"), "36.4", 364, -1),  # 36.4 °C, the value bluetooth-sig reads as 3.64e129
    (bytes.fromhex("da0300ff"), "98.6", 986, -1),  # 98.6 °F
    (bytes.fromhex("ffffff00"), "-1", -1, 0),
    (bytes.fromhex("e80300fd"), "1.000", 1000, -3),
    (bytes.fromhex("ffff7f01"), "8.388607E+7", 8388607, 1),
]


@pytest.mark.parametrize(("data", "text", "mantissa", "exponent"), FLOAT_VECTORS)
def test_float_vectors(data: bytes, text: str, mantissa: int, exponent: int) -> None:
    raw = struct.unpack("<I", data)[0]
    value = decode_float(raw)
    assert value == MedFloat(mantissa, exponent)
    assert isinstance(value, MedFloat)
    assert str(value.decimal) == text
    assert encode_float(value) == raw


@pytest.mark.parametrize(
    ("data", "special"),
    [
        (b"\xff\x07", Special.NAN),
        (b"\x00\x08", Special.NRES),
        (b"\xfe\x07", Special.POSITIVE_INFINITY),
        (b"\x02\x08", Special.NEGATIVE_INFINITY),
        (b"\x01\x08", Special.RESERVED),
    ],
)
def test_sfloat_specials_from_bytes_on_air(data: bytes, special: Special) -> None:
    value = decode_sfloat(int.from_bytes(data, "little"))
    assert value is special
    assert not isinstance(value, MedFloat)  # never 2047 or -2048


@pytest.mark.parametrize(
    ("data", "special"),
    [
        (b"\xff\xff\x7f\x00", Special.NAN),
        (b"\x00\x00\x80\x00", Special.NRES),
        (b"\xfe\xff\x7f\x00", Special.POSITIVE_INFINITY),
        (b"\x02\x00\x80\x00", Special.NEGATIVE_INFINITY),
        (b"\x01\x00\x80\x00", Special.RESERVED),
    ],
)
def test_float_specials_from_bytes_on_air(data: bytes, special: Special) -> None:
    assert decode_float(int.from_bytes(data, "little")) is special


def test_nxp_shifted_float_specials_are_plain_numbers() -> None:
    # ble_health.md §1.2 pitfall 4: 0x07FFFFFF is not NaN but exponent 7, mantissa -1
    assert decode_float(0x07FFFFFF) == MedFloat(-1, 7)


def test_every_sfloat_code_round_trips() -> None:
    for raw in range(0x10000):
        assert encode_sfloat(decode_sfloat(raw)) == raw
    assert len(SFLOAT_SPECIALS) == len(FLOAT_SPECIALS) == len(Special)


@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_code_round_trips(raw: int) -> None:
    assert encode_float(decode_float(raw)) == raw


@given(SFLOAT_VALUES)
def test_sfloat_value_round_trip(value: MedValue) -> None:
    assert decode_sfloat(encode_sfloat(value)) == value


@given(FLOAT_VALUES)
def test_float_value_round_trip(value: MedValue) -> None:
    assert decode_float(encode_float(value)) == value


@pytest.mark.parametrize(
    "value",
    [MedFloat(2048, 0), MedFloat(-2049, 0), MedFloat(1, 8), MedFloat(1, -9), MedFloat(2047, 0), MedFloat(-2048, 0)],
)
def test_sfloat_encode_refuses_what_does_not_fit_or_collides(value: MedFloat) -> None:
    with pytest.raises(ValueError, match=r"fit|special"):
        encode_sfloat(value)


@pytest.mark.parametrize("raw", [-1, 0x10000])
def test_sfloat_decode_refuses_out_of_range_codes(raw: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        decode_sfloat(raw)


def test_float_decode_refuses_out_of_range_codes() -> None:
    with pytest.raises(ValueError, match="out of range"):
        decode_float(1 << 32)
