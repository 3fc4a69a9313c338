"""Glucose Measurement 0x2A18 and Glucose Measurement Context 0x2A34."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.glucose import decode_context, decode_measurement
from shared.gatt.sfloat import MedValue, Special
from tests.shared.gatt.strategies import DATETIMES, SFLOAT_VALUES, date_time_bytes, same, sfloat_bytes

# flags 0x0B: time offset, concentration (kg/L), sensor status; seq 1; 2020-12-25 10:30; offset -16 min;
# 0xB05A = 90 × 10^-5 kg/L = 90 mg/dL; capillary whole blood, finger; status: battery low
MG_DL = bytes.fromhex("0b0100e4070c190a1e00f0ff5ab0110100")


def test_kg_per_litre_vector_is_mg_per_dl_with_original_kept() -> None:
    reading = decode("2A18", MG_DL)
    glucose = reading.values["glucose"]
    assert (glucose.value, glucose.unit) == (Decimal(90), "mg/dL")
    assert glucose.original is not None
    assert (glucose.original.value, glucose.original.unit) == (Decimal("0.00090"), "kg/L")
    assert (glucose.original.mantissa, glucose.original.exponent) == (90, -5)
    assert reading.details["sequence_number"] == 1
    assert reading.details["base_time"] == "2020-12-25T10:30:00"
    assert reading.details["time_offset_minutes"] == -16
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 14)  # user-facing time = base + offset
    assert reading.timestamp.timezone == "device-local (unknown offset)"
    assert reading.details["sample_type"] == "capillary whole blood"
    assert reading.details["sample_location"] == "finger"
    assert reading.details["control_solution"] is False
    assert reading.details["sensor_status"] == ["device_battery_low"]
    assert reading.details["context_follows"] is False


def test_mol_per_litre_vector_is_mmol_per_l() -> None:
    # 0xC037 = 55 × 10^-4 mol/L = 5.5 mmol/L
    glucose = decode_measurement(bytes.fromhex("060200e4070c190a1e0037c011")).values["glucose"]
    assert (glucose.value, glucose.unit) == (Decimal("5.5"), "mmol/L")
    assert glucose.original is not None
    assert glucose.original.unit == "mol/L"


def test_control_solution_is_marked() -> None:
    reading = decode_measurement(bytes.fromhex("020300e4070c190a1e005ab04a"))
    assert reading.details["sample_type"] == "control solution"
    assert reading.details["sample_location"] == "control solution"
    assert reading.details["control_solution"] is True


def test_nan_concentration_is_no_value() -> None:
    glucose = decode_measurement(bytes.fromhex("020300e4070c190a1e00ff0711")).values["glucose"]
    assert glucose.value is None
    assert glucose.special is Special.NAN


def test_offset_from_unknown_base_time_keeps_base() -> None:
    reading = decode_measurement(bytes.fromhex("010300000000000000000a00"))
    assert reading.timestamp is not None
    assert reading.timestamp.local is None
    assert reading.details["time_offset_minutes"] == 10


def test_offset_past_the_calendar_is_an_error() -> None:
    with pytest.raises(GattDecodeError, match="outside the calendar"):
        decode_measurement(bytes.fromhex("0103000f270c1f171e00ff7f"))  # 9999-12-31 + 32767 min


@given(
    flags=st.integers(0, 0x1F),
    seq=st.integers(0, 0xFFFF),
    base=DATETIMES.filter(lambda d: datetime(1600, 1, 1) < d < datetime(9990, 1, 1)),
    offset=st.integers(-0x8000, 0x7FFF),
    value=SFLOAT_VALUES,
    type_location=st.integers(0, 0xFF),
    status=st.integers(0, 0xFFFF),
)
def test_every_flag_combination_round_trips(
    flags: int, seq: int, base: datetime, offset: int, value: MedValue, type_location: int, status: int
) -> None:
    data = bytes([flags]) + struct.pack("<H", seq) + date_time_bytes(base)
    if flags & 0x01:
        data += struct.pack("<h", offset)
    if flags & 0x02:
        data += sfloat_bytes(value) + bytes([type_location])
    if flags & 0x08:
        data += struct.pack("<H", status)
    reading = decode_measurement(data)
    assert reading.details["sequence_number"] == seq
    assert reading.timestamp is not None
    assert reading.timestamp.local == base + timedelta(minutes=offset if flags & 0x01 else 0)
    assert ("glucose" in reading.values) == bool(flags & 0x02)
    if flags & 0x02:
        glucose = reading.values["glucose"]
        assert glucose.original is not None
        assert same(glucose.original, value)
        assert glucose.unit == ("mmol/L" if flags & 0x04 else "mg/dL")
        if glucose.original.value is not None:
            assert glucose.value == glucose.original.value * (1000 if flags & 0x04 else 100000)
    assert ("sensor_status" in reading.details) == bool(flags & 0x08)
    assert reading.details["context_follows"] is bool(flags & 0x10)


def test_truncation_at_every_byte_raises() -> None:
    for cut in range(len(MG_DL)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_measurement(MG_DL[:cut])


def test_trailing_bytes_and_reserved_flags_are_errors() -> None:
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_measurement(MG_DL + b"\x00")
    with pytest.raises(GattDecodeError, match="reserved flag bits"):
        decode_measurement(bytes([0x20]) + MG_DL[1:])


# flags 0x7F (no extended): breakfast 50 g (0xD032 = 50 × 10^-3 kg), preprandial, self / no health issues,
# 10000 s at 80 %, rapid-acting insulin 10 mL (0xD00A = 10 × 10^-3 L), HbA1c 6.9 % (0xF045)
CONTEXT = bytes.fromhex("7f01000132d00151102750010ad045f0")


def test_context_vector() -> None:
    reading = decode("glucose_measurement_context", CONTEXT)
    assert reading.details == {
        "sequence_number": 1,
        "carbohydrate": "breakfast",
        "meal": "preprandial",
        "tester": "self",
        "health": "no health issues",
        "medication": "rapid acting insulin",
    }
    got = {k: (q.value, q.unit) for k, q in reading.values.items()}
    assert got == {
        "carbohydrate": (Decimal(50), "g"),
        "exercise_duration": (Decimal(10000), "s"),
        "exercise_intensity": (Decimal(80), "%"),
        "medication": (Decimal(10), "mL"),
        "hba1c": (Decimal("6.9"), "%"),
    }


def test_context_medication_in_kg_is_mg_and_overrun_exercise() -> None:
    reading = decode_context(bytes.fromhex("180100ffff640201b0"))  # 1 × 10^-5 kg = 10 mg
    assert reading.details["exercise_duration"] == "overrun"
    assert (reading.values["medication"].value, reading.values["medication"].unit) == (Decimal(10), "mg")


def test_context_truncation_and_extended_flags() -> None:
    for cut in range(len(CONTEXT)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_context(CONTEXT[:cut])
    assert decode_context(bytes.fromhex("80010000")).values == {}
    with pytest.raises(GattDecodeError, match="reserved extended flag bits"):
        decode_context(bytes.fromhex("80010001"))
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_context(CONTEXT + b"\x00")
