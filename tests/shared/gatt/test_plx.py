"""Pulse oximeter: PLX Spot-check 0x2A5E and Continuous 0x2A5F."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.plx import decode_continuous, decode_spot_check
from shared.gatt.sfloat import MedValue, Special
from tests.shared.gatt.strategies import DATETIMES, SFLOAT_VALUES, date_time_bytes, same, sfloat_bytes

# all optional fields: SpO2 98 %, PR 72 bpm, 2020-12-25 10:30, status validated (bit 7),
# device/sensor: low perfusion (bit 5), PAI 2.5 % (0xF019)
SPOT_FULL = bytes.fromhex("0f62004800e4070c190a1e00800020000019f0")


def test_spot_check_vector() -> None:
    reading = decode("2A5E", SPOT_FULL)
    assert {k: (q.value, q.unit) for k, q in reading.values.items()} == {
        "spo2": (Decimal(98), "%"),
        "pulse_rate": (Decimal(72), "bpm"),
        "pulse_amplitude_index": (Decimal("2.5"), "%"),
    }
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 30)
    assert reading.details == {
        "device_clock_not_set": False,
        "measurement_status": ["validated_data"],
        "not_patient_data": False,
        "device_and_sensor_status": ["low_perfusion_detected"],
    }


def test_demo_data_is_not_patient_data_and_nres_spo2_is_no_value() -> None:
    reading = decode_spot_check(bytes.fromhex("12000848000004"))  # clock not set, demo data
    assert reading.values["spo2"].value is None
    assert reading.values["spo2"].special is Special.NRES
    assert reading.details["not_patient_data"] is True
    assert reading.details["device_clock_not_set"] is True


@given(
    flags=st.integers(0, 0x1F),
    spo2=SFLOAT_VALUES,
    pr=SFLOAT_VALUES,
    when=DATETIMES,
    status=st.integers(0, 0xFFFF),
    device=st.integers(0, 0xFFFFFF),
    pai=SFLOAT_VALUES,
)
def test_spot_check_every_flag_combination_round_trips(
    flags: int, spo2: MedValue, pr: MedValue, when: datetime, status: int, device: int, pai: MedValue
) -> None:
    data = bytes([flags]) + sfloat_bytes(spo2) + sfloat_bytes(pr)
    if flags & 0x01:
        data += date_time_bytes(when)
    if flags & 0x02:
        data += struct.pack("<H", status)
    if flags & 0x04:
        data += device.to_bytes(3, "little")
    if flags & 0x08:
        data += sfloat_bytes(pai)
    reading = decode_spot_check(data)
    assert same(reading.values["spo2"], spo2)
    assert same(reading.values["pulse_rate"], pr)
    assert (reading.timestamp.local if reading.timestamp else None) == (when if flags & 0x01 else None)
    assert ("measurement_status" in reading.details) == bool(flags & 0x02)
    assert ("device_and_sensor_status" in reading.details) == bool(flags & 0x04)
    if flags & 0x08:
        assert same(reading.values["pulse_amplitude_index"], pai)
    assert reading.details["device_clock_not_set"] is bool(flags & 0x10)


@given(flags=st.integers(0, 0x1F), pairs=st.lists(SFLOAT_VALUES, min_size=7, max_size=7), status=st.integers(0, 0xFFFF))
def test_continuous_every_flag_combination_round_trips(flags: int, pairs: list[MedValue], status: int) -> None:
    data = bytes([flags]) + sfloat_bytes(pairs[0]) + sfloat_bytes(pairs[1])
    if flags & 0x01:
        data += sfloat_bytes(pairs[2]) + sfloat_bytes(pairs[3])
    if flags & 0x02:
        data += sfloat_bytes(pairs[4]) + sfloat_bytes(pairs[5])
    if flags & 0x04:
        data += struct.pack("<H", status)
    if flags & 0x08:
        data += (status << 4).to_bytes(3, "little")
    if flags & 0x10:
        data += sfloat_bytes(pairs[6])
    reading = decode_continuous(data)
    assert reading.timestamp is None
    assert same(reading.values["spo2"], pairs[0])
    assert same(reading.values["pulse_rate"], pairs[1])
    assert ("spo2_fast" in reading.values) == bool(flags & 0x01)
    if flags & 0x01:
        assert same(reading.values["pulse_rate_fast"], pairs[3])
    assert ("spo2_slow" in reading.values) == bool(flags & 0x02)
    if flags & 0x02:
        assert same(reading.values["spo2_slow"], pairs[4])
    assert ("pulse_amplitude_index" in reading.values) == bool(flags & 0x10)


def test_spot_check_truncation_at_every_byte_raises() -> None:
    for cut in range(len(SPOT_FULL)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode_spot_check(SPOT_FULL[:cut])


def test_continuous_truncation_at_every_byte_raises() -> None:
    full = bytes.fromhex("1f620048006100470063004900800000000019f0")
    assert decode_continuous(full).values["spo2_slow"].value == 99
    for cut in range(len(full)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode("plx_continuous_measurement", full[:cut])


def test_trailing_bytes_and_reserved_flags_are_errors() -> None:
    with pytest.raises(GattDecodeError, match="trailing"):
        decode_spot_check(SPOT_FULL + b"\x00")
    for flags in (0x20, 0x40, 0x80):
        with pytest.raises(GattDecodeError, match="reserved flag bits"):
            decode_continuous(bytes([flags]) + SPOT_FULL[1:5])
