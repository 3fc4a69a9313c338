"""Current Time 0x2A2B."""

from __future__ import annotations

from datetime import datetime

import pytest

from shared.gatt import GattDecodeError, decode

VECTOR = bytes.fromhex("e4070c190a1e00058001")  # 2020-12-25 10:30:00 Friday, 128/256 s, manual update


def test_current_time_vector() -> None:
    reading = decode("current_time", VECTOR)
    assert reading.timestamp is not None
    assert reading.timestamp.local == datetime(2020, 12, 25, 10, 30)
    assert reading.timestamp.timezone == "device-local (unknown offset)"
    assert reading.details["day_of_week"] == "Friday"
    assert reading.values["fractions"].value == 128
    assert reading.flag_names == ["manual_time_update"]


def test_truncation_at_every_byte_raises() -> None:
    for cut in range(len(VECTOR)):
        with pytest.raises(GattDecodeError, match="truncated"):
            decode("2A2B", VECTOR[:cut])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (VECTOR[:7] + b"\x08\x00\x00", "day of week 8"),
        (VECTOR[:9] + b"\x10", "reserved adjust-reason"),
        (VECTOR + b"\x00", "trailing"),
    ],
)
def test_bad_values_are_errors(data: bytes, match: str) -> None:
    with pytest.raises(GattDecodeError, match=match):
        decode("2A2B", data)
