"""Weight Measurement 0x2A9D: 0.005 kg / 0.01 lb resolution, BMI and height, unsuccessful measurement."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.sfloat import Special
from shared.gatt.weight import decode as decode_weight
from tests.shared.gatt.strategies import DATETIMES, date_time_bytes

# SI, time stamp, user 1, BMI+height: 18000 × 0.005 = 90 kg; BMI 24.1; height 1.714 m
SI_FULL = bytes.fromhex("0e5046e4070c190a1e0001f100b206")


def test_si_vector() -> None:
    reading = decode("2A9D", SI_FULL)
    assert {k: (q.value, q.unit) for k, q in reading.values.items()} == {
        "weight": (Decimal("90.000"), "kg"),
        "bmi": (Decimal("24.1"), "kg/m²"),
        "height": (Decimal("1.714"), "m"),
    }
    assert reading.details == {"measurement_unsuccessful": False, "user_id": 1}
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 30)


def test_si_resolution_is_five_grams() -> None:
    assert decode_weight(bytes.fromhex("000100")).values["weight"].value == Decimal("0.005")


def test_imperial_vector_converted_exactly_with_original_kept() -> None:
    reading = decode_weight(bytes.fromhex("091c3ef100a902"))  # 159.00 lb, 68.1 in
    weight, height = reading.values["weight"], reading.values["height"]
    assert (weight.value, weight.unit) == (Decimal("159.00") * Decimal("0.45359237"), "kg")
    assert weight.original is not None
    assert (weight.original.value, weight.original.unit) == (Decimal("159.00"), "lb")
    assert (height.value, height.unit) == (Decimal("1.72974"), "m")
    assert height.original is not None
    assert height.original.unit == "in"


def test_unsuccessful_measurement_has_no_value() -> None:
    reading = decode_weight(bytes.fromhex("04ffffff"))
    assert reading.values["weight"].value is None
    assert reading.values["weight"].special is Special.NAN
    assert reading.details == {"measurement_unsuccessful": True, "user_id": "unknown"}


@given(
    flags=st.integers(0, 0x0F),
    weight=st.integers(0, 0xFFFE),
    when=DATETIMES,
    user=st.integers(0, 0xFF),
    bmi=st.integers(0, 0xFFFF),
    height=st.integers(0, 0xFFFF),
)
def test_every_flag_combination_round_trips(
    flags: int, weight: int, when: datetime, user: int, bmi: int, height: int
) -> None:
    data = bytes([flags]) + struct.pack("<H", weight)
    if flags & 0x02:
        data += date_time_bytes(when)
    if flags & 0x04:
        data += bytes([user])
    if flags & 0x08:
        data += struct.pack("<HH", bmi, height)
    reading = decode_weight(data)
    w = reading.values["weight"]
    assert w.unit == "kg"
    if flags & 0x01:
        assert w.original is not None
        assert w.original.value == Decimal(weight) / 100
        assert w.value == Decimal(weight) / 100 * Decimal("0.45359237")
    else:
        assert w.value == Decimal(weight) * Decimal("0.005")
    assert (reading.timestamp.local if reading.timestamp else None) == (when if flags & 0x02 else None)
    assert ("user_id" in reading.details) == bool(flags & 0x04)
    assert ("bmi" in reading.values) == ("height" in reading.values) == bool(flags & 0x08)
    if flags & 0x08:
        assert reading.values["bmi"].value == Decimal(bmi) / 10
        h = reading.values["height"]
        assert h.value == (Decimal(height) / 10 * Decimal("0.0254") if flags & 0x01 else Decimal(height) / 1000)


def test_truncation_at_every_byte_raises() -> None:
    for cut in range(len(SI_FULL)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_weight(SI_FULL[:cut])


def test_trailing_bytes_and_reserved_flags_are_errors() -> None:
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_weight(SI_FULL + b"\x00")
    with pytest.raises(GattDecodeError, match="reserved flag bits"):
        decode_weight(bytes.fromhex("105046"))
