"""Temperature Measurement 0x2A1C / Intermediate Temperature 0x2A1E."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.sfloat import MedValue, Special
from shared.gatt.thermometer import decode_intermediate, decode_measurement
from tests.shared.gatt.strategies import DATETIMES, FLOAT_VALUES, date_time_bytes, float_bytes, same

FULL = bytes.fromhex("066c0100ffe4070c190a1e0006")  # 36.4 °C, 2020-12-25 10:30, mouth


def test_celsius_vector() -> None:
    reading = decode("2A1C", FULL)
    temperature = reading.values["temperature"]
    assert (temperature.value, temperature.unit) == (Decimal("36.4"), "°C")
    assert (temperature.mantissa, temperature.exponent) == (364, -1)
    assert temperature.original is None
    assert reading.details["temperature_type"] == "mouth"
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 30)


def test_fahrenheit_is_converted_to_celsius_and_kept() -> None:
    temperature = decode_measurement(bytes.fromhex("01da0300ff")).values["temperature"]  # 98.6 °F
    assert (temperature.value, temperature.unit) == (Decimal("37.00"), "°C")
    assert temperature.original is not None
    assert (temperature.original.value, temperature.original.unit) == (Decimal("98.6"), "°F")


@pytest.mark.parametrize("special", list(Special))
def test_specials_stay_specials_in_both_units(special: Special) -> None:
    for flags in (0x00, 0x01):
        temperature = decode_measurement(bytes([flags]) + float_bytes(special)).values["temperature"]
        assert temperature.value is None
        assert temperature.special is special


def test_reserved_temperature_type_is_named_reserved() -> None:
    assert decode_measurement(bytes.fromhex("046c0100ff0a")).details["temperature_type"] == "reserved (10)"


@given(
    flags=st.integers(0, 0x07),
    value=FLOAT_VALUES,
    when=DATETIMES,
    kind=st.integers(0, 0xFF),
    intermediate=st.booleans(),
)
def test_every_flag_combination_round_trips(
    flags: int, value: MedValue, when: datetime, kind: int, intermediate: bool
) -> None:
    data = bytes([flags]) + float_bytes(value)
    if flags & 0x02:
        data += date_time_bytes(when)
    if flags & 0x04:
        data += bytes([kind])
    reading = (decode_intermediate if intermediate else decode_measurement)(data)
    assert reading.characteristic == ("2A1E" if intermediate else "2A1C")
    temperature = reading.values["temperature"]
    assert temperature.unit == "°C"
    assert same(temperature.original if flags & 0x01 else temperature, value)
    assert (reading.timestamp.local if reading.timestamp else None) == (when if flags & 0x02 else None)
    assert ("temperature_type" in reading.details) == bool(flags & 0x04)


def test_truncation_at_every_byte_raises() -> None:
    for cut in range(len(FULL)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_measurement(FULL[:cut])


def test_trailing_bytes_and_reserved_flags_are_errors() -> None:
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_measurement(FULL + b"\x00")
    with pytest.raises(GattDecodeError, match="reserved flag bits"):
        decode_measurement(bytes.fromhex("086c0100ff"))
