"""Body Composition Measurement 0x2A9C."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.body_composition import decode as decode_bc
from shared.gatt.sfloat import Special
from tests.shared.gatt.strategies import DATETIMES, date_time_bytes

# SI, every field: fat 22.5 %, 2020-12-25 10:30, user 2, BMR 7000 kJ, muscle 40.0 %, muscle mass 30 kg,
# fat-free 60 kg, soft lean 55 kg, water 40 kg, impedance 500.0 Ω, weight 80 kg, height 1.750 m
SI_FULL = (
    struct.pack("<HH", 0x0FFE, 225)
    + bytes.fromhex("e4070c190a1e00")
    + bytes([2])
    + struct.pack("<HHHHHHHHH", 7000, 400, 6000, 12000, 11000, 8000, 5000, 16000, 1750)
)


def test_si_vector() -> None:
    reading = decode("2A9C", SI_FULL)
    assert {k: (q.value, q.unit) for k, q in reading.values.items()} == {
        "body_fat": (Decimal("22.5"), "%"),
        "basal_metabolism": (Decimal(7000), "kJ"),
        "muscle_percentage": (Decimal("40.0"), "%"),
        "muscle_mass": (Decimal(30), "kg"),
        "fat_free_mass": (Decimal(60), "kg"),
        "soft_lean_mass": (Decimal(55), "kg"),
        "body_water_mass": (Decimal(40), "kg"),
        "impedance": (Decimal(500), "Ω"),
        "weight": (Decimal(80), "kg"),
        "height": (Decimal("1.75"), "m"),
    }
    assert reading.details == {"measurement_unsuccessful": False, "multiple_packet": False, "user_id": 2}
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 30)


def test_imperial_unsuccessful_multi_packet() -> None:
    reading = decode_bc(struct.pack("<HHH", 0x1401, 0xFFFF, 17637))  # weight 176.37 lb
    assert reading.values["body_fat"].special is Special.NAN
    assert reading.details == {"measurement_unsuccessful": True, "multiple_packet": True}
    weight = reading.values["weight"]
    assert weight.value == Decimal("176.37") * Decimal("0.45359237")
    assert weight.original is not None
    assert weight.original.unit == "lb"


@given(flags=st.integers(0, 0x1FFF), fields=st.lists(st.integers(0, 0xFFFF), min_size=12, max_size=12), when=DATETIMES)
def test_every_flag_combination_decodes_the_fields_it_announces(flags: int, fields: list[int], when: datetime) -> None:
    data = struct.pack("<HH", flags, fields[0])
    if flags & 0x02:
        data += date_time_bytes(when)
    if flags & 0x04:
        data += bytes([fields[1] & 0xFF])
    announced = [bit for bit in range(3, 12) if flags & (1 << bit)]
    data += b"".join(struct.pack("<H", fields[bit]) for bit in announced)
    reading = decode_bc(data)
    assert len(reading.values) == 1 + len(announced)
    assert (reading.timestamp is not None) == bool(flags & 0x02)
    if 10 in announced and not flags & 0x01:
        assert reading.values["weight"].value == Decimal(fields[10]) * Decimal("0.005")


def test_truncation_at_every_byte_raises() -> None:
    for cut in range(len(SI_FULL)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_bc(SI_FULL[:cut])


def test_trailing_bytes_and_reserved_flags_are_errors() -> None:
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_bc(SI_FULL + b"\x00")
    with pytest.raises(GattDecodeError, match="reserved flag bits"):
        decode_bc(struct.pack("<HH", 0x2000, 225))
