"""Blood Pressure Measurement 0x2A35 / Intermediate Cuff Pressure 0x2A36."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.blood_pressure import decode_intermediate_cuff_pressure, decode_measurement
from shared.gatt.sfloat import MedValue, Special
from tests.shared.gatt.strategies import DATETIMES, SFLOAT_VALUES, date_time_bytes, same, sfloat_bytes

FULL = bytes.fromhex("1e790050006400e4070c190a1e004800010500")
# flags 0x1E: mmHg, time stamp, pulse, user, status; 121/80 MAP 100; 2020-12-25 10:30:00; pulse 72; user 1;
# status body movement + irregular pulse


def test_full_measurement_vector() -> None:
    reading = decode("2A35", FULL)
    assert {k: (q.value, q.unit) for k, q in reading.values.items()} == {
        "systolic": (121, "mmHg"),
        "diastolic": (80, "mmHg"),
        "mean_arterial_pressure": (100, "mmHg"),
        "pulse_rate": (72, "bpm"),
    }
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 30)
    assert reading.timestamp.local.tzinfo is None
    assert reading.timestamp.timezone == "device-local (unknown offset)"
    assert reading.details == {
        "user_id": 1,
        "measurement_status": ["body_movement", "irregular_pulse"],
        "pulse_rate_range": "within range",
    }


def test_kpa_values_are_converted_to_mmhg_and_kept() -> None:
    # 16.0 kPa / 10.7 kPa / 12.5 kPa: SFLOAT exponent -1
    data = bytes([0x01]) + sfloat_bytes_hex("f0a0") + sfloat_bytes_hex("f06b") + sfloat_bytes_hex("f07d")
    reading = decode_measurement(data)
    systolic = reading.values["systolic"]
    assert (systolic.value, systolic.unit) == (Decimal("120.0"), "mmHg")
    assert systolic.original is not None
    assert (systolic.original.value, systolic.original.unit) == (Decimal("16.0"), "kPa")
    assert reading.values["diastolic"].value == Decimal("80.3")
    assert "units_kpa" in reading.flag_names


def sfloat_bytes_hex(code: str) -> bytes:
    return struct.pack("<H", int(code, 16))


def test_intermediate_cuff_pressure_with_nan_diastolic_and_map() -> None:
    reading = decode("intermediate_cuff_pressure", bytes.fromhex("009600ff07ff07"))
    assert reading.characteristic == "2A36"
    assert reading.values["cuff_pressure"].value == 150
    for key in ("diastolic", "mean_arterial_pressure"):
        assert reading.values[key].value is None
        assert reading.values[key].special is Special.NAN


def test_nan_pulse_is_never_2047() -> None:
    reading = decode_measurement(bytes.fromhex("04790050006400ff07"))
    assert reading.values["pulse_rate"].value is None
    assert reading.values["pulse_rate"].special is Special.NAN


def test_unknown_user_and_unknown_date() -> None:
    reading = decode_measurement(bytes.fromhex("0a79005000640000000000000000ff"))
    assert reading.details["user_id"] == "unknown"
    assert reading.timestamp is not None
    assert reading.timestamp.local is None
    assert reading.timestamp.year == 0


@given(
    flags=st.integers(0, 0x1F),
    pressures=st.tuples(SFLOAT_VALUES, SFLOAT_VALUES, SFLOAT_VALUES),
    when=DATETIMES,
    pulse=SFLOAT_VALUES,
    user=st.integers(0, 0xFF),
    status=st.integers(0, 0xFFFF),
    intermediate=st.booleans(),
)
def test_every_flag_combination_round_trips(
    flags: int,
    pressures: tuple[MedValue, MedValue, MedValue],
    when: datetime,
    pulse: MedValue,
    user: int,
    status: int,
    intermediate: bool,
) -> None:
    data = bytes([flags]) + b"".join(sfloat_bytes(p) for p in pressures)
    if flags & 0x02:
        data += date_time_bytes(when)
    if flags & 0x04:
        data += sfloat_bytes(pulse)
    if flags & 0x08:
        data += bytes([user])
    if flags & 0x10:
        data += struct.pack("<H", status)
    reading = (decode_intermediate_cuff_pressure if intermediate else decode_measurement)(data)
    assert reading.characteristic == ("2A36" if intermediate else "2A35")
    first = "cuff_pressure" if intermediate else "systolic"
    for key, sent in zip((first, "diastolic", "mean_arterial_pressure"), pressures, strict=True):
        q = reading.values[key]
        assert q.unit == "mmHg"
        if flags & 0x01:
            assert q.original is not None
            assert q.original.unit == "kPa"
            assert same(q.original, sent)
            assert (q.value is None) == isinstance(sent, Special)
        else:
            assert same(q, sent)
    assert (reading.timestamp is not None) == bool(flags & 0x02)
    if reading.timestamp is not None:
        assert reading.timestamp.local == when
    assert ("pulse_rate" in reading.values) == bool(flags & 0x04)
    if flags & 0x04:
        assert same(reading.values["pulse_rate"], pulse)
    if flags & 0x08:
        assert reading.details["user_id"] == ("unknown" if user == 0xFF else user)
    else:
        assert "user_id" not in reading.details
    if flags & 0x10:
        names = reading.details["measurement_status"]
        assert isinstance(names, list)
        assert ("body_movement" in names) == bool(status & 0x01)
        assert ("improper_position" in names) == bool(status & 0x20)
        assert (
            reading.details["pulse_rate_range"]
            == ["within range", "above upper limit", "below lower limit", "reserved"][(status >> 3) & 3]
        )


@pytest.mark.parametrize("data", [FULL, bytes.fromhex("00790050006400")])
def test_truncation_at_every_byte_raises(data: bytes) -> None:
    for cut in range(len(data)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_measurement(data[:cut])


def test_contract_single_byte_is_a_clear_error() -> None:
    with pytest.raises(GattDecodeError) as info:
        decode("2A35", b"\x00")
    assert info.value.offset == 1
    assert "systolic" in info.value.message


def test_trailing_bytes_are_an_error() -> None:
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_measurement(FULL + b"\x00")


@pytest.mark.parametrize("flags", [0x20, 0x40, 0x80])
def test_reserved_flag_bits_are_an_error(flags: int) -> None:
    with pytest.raises(GattDecodeError, match="reserved flag bits"):
        decode_measurement(bytes([flags]) + FULL[1:7])


@pytest.mark.parametrize(
    ("date_hex", "what"),
    [
        ("e4070d190a1e00", "month 13"),
        ("e4070c200a1e00", "day 32"),
        ("e4070c19181e00", "hours 24"),
        ("e4070c190a3c00", "minutes 60"),
        ("e4070c190a1e3c", "seconds 60"),
        ("d1070c190a1e00", "year 2001"),
    ],
)
def test_impossible_time_stamps_are_errors(date_hex: str, what: str) -> None:
    data = bytes.fromhex("02790050006400" + date_hex)
    if what == "year 2001":  # a valid year: control case
        assert decode_measurement(data).timestamp is not None
        return
    with pytest.raises(GattDecodeError, match=what) as info:
        decode_measurement(data)
    assert info.value.offset == 7


def test_impossible_calendar_date_is_an_error() -> None:
    with pytest.raises(GattDecodeError, match="day is out of range"):
        decode_measurement(bytes.fromhex("02790050006400e407021e0a1e00"))  # 30 February


def test_status_reserved_bits_are_reported() -> None:
    reading = decode_measurement(bytes.fromhex("107900500064004000"))
    assert reading.details["measurement_status_reserved_bits"] == "0x0040"
