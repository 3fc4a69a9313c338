"""Heart Rate Measurement 0x2A37: vectors, every flag combination (Hypothesis), truncation, reserved bits."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.gatt import GattDecodeError, decode
from shared.gatt.heart_rate import decode as decode_hr


def test_contract_vector_80_bpm() -> None:
    reading = decode("2A37", bytes.fromhex("0050"))
    assert reading.values["heart_rate"].value == 80
    assert reading.values["heart_rate"].unit == "bpm"
    assert reading.details["sensor_contact"] == "not supported"
    assert reading.timestamp is None


def test_uint16_heart_rate_with_contact_energy_and_rr() -> None:
    # flags 0x1F: uint16 HR, contact supported+detected, energy, RR; HR 300, energy 1000 kJ, RR 1024 and 512
    reading = decode_hr(bytes.fromhex("1f2c01e80300040002"))
    assert reading.values["heart_rate"].value == 300
    assert reading.values["energy_expended"].value == 1000
    assert reading.values["energy_expended"].unit == "kJ"
    assert [q.value for q in reading.series["rr_intervals"]] == [Decimal(1), Decimal("0.5")]
    assert reading.series["rr_intervals"][0].unit == "s"
    original = reading.series["rr_intervals"][1].original
    assert original is not None
    assert (original.value, original.unit) == (512, "1/1024 s")
    assert reading.details["sensor_contact"] == "detected"


@pytest.mark.parametrize(
    ("flags", "contact"), [(0x00, "not supported"), (0x02, "not supported"), (0x04, "not detected"), (0x06, "detected")]
)
def test_sensor_contact_bit1_only_counts_when_supported(flags: int, contact: str) -> None:
    assert decode_hr(bytes([flags, 60])).details["sensor_contact"] == contact


@given(
    flags=st.integers(0, 0x1F),
    heart_rate=st.integers(0, 0xFFFF),
    energy=st.integers(0, 0xFFFF),
    rr=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=9),
)
def test_every_flag_combination_round_trips(flags: int, heart_rate: int, energy: int, rr: list[int]) -> None:
    wide = bool(flags & 0x01)
    hr = heart_rate if wide else heart_rate & 0xFF
    data = bytes([flags]) + (struct.pack("<H", hr) if wide else bytes([hr]))
    if flags & 0x08:
        data += struct.pack("<H", energy)
    if flags & 0x10:
        data += b"".join(struct.pack("<H", x) for x in rr)
    reading = decode_hr(data)
    assert reading.flags == flags
    assert reading.values["heart_rate"].value == hr
    assert ("energy_expended" in reading.values) == bool(flags & 0x08)
    if flags & 0x08:
        assert reading.values["energy_expended"].value == energy
    if flags & 0x10:
        series = reading.series["rr_intervals"]
        assert [q.original.value for q in series if q.original] == rr
        assert [q.value for q in series] == [Decimal(x) / 1024 for x in rr]
    else:
        assert reading.series == {}


@pytest.mark.parametrize("hex_value", ["1f2c01e8030004", "0f2c01e803", "0850e803", "1050ff00", "0150ff", "0050"])
def test_truncation_at_every_byte_raises(hex_value: str) -> None:
    data = bytes.fromhex(hex_value)
    for cut in range(len(data)):
        with pytest.raises(GattDecodeError) as info:
            decode_hr(data[:cut])
        assert info.value.characteristic == "2A37"
        assert "truncated" in info.value.reason
        assert info.value.offset is not None
        assert info.value.offset <= cut


def test_half_an_rr_interval_is_an_error() -> None:
    with pytest.raises(GattDecodeError, match="RR interval"):
        decode_hr(bytes.fromhex("1050000400"))


def test_trailing_bytes_are_an_error() -> None:
    with pytest.raises(GattDecodeError, match="trailing") as info:
        decode_hr(bytes.fromhex("005001"))
    assert info.value.offset == 2


@pytest.mark.parametrize("flags", [0x20, 0x40, 0x80, 0xE0])
def test_reserved_flag_bits_are_an_error(flags: int) -> None:
    with pytest.raises(GattDecodeError, match="reserved flag bits") as info:
        decode_hr(bytes([flags, 60]))
    assert info.value.offset == 0
