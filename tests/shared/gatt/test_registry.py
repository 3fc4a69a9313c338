"""The `decode` registry: the ways a characteristic can be named, and unknown ones."""

from __future__ import annotations

import pytest

from shared.errors import DomainError
from shared.gatt import DECODERS, GattDecodeError, decode, resolve


@pytest.mark.parametrize(
    "name",
    [
        "2A37",
        "2a37",
        "0x2a37",
        "0X2A37",
        "00002a37-0000-1000-8000-00805f9b34fb",
        "00002A37-0000-1000-8000-00805F9B34FB",
        "heart_rate_measurement",
        "Heart Rate Measurement",
        "heart-rate-measurement",
    ],
)
def test_names_resolve(name: str) -> None:
    assert resolve(name) == "2A37"
    assert decode(name, b"\x00\x50").values["heart_rate"].value == 80


@pytest.mark.parametrize("name", ["2A99", "2A52", "foo", "", "12345678-0000-1000-8000-00805f9b34fb", "2A3"])
def test_unknown_characteristics_are_decode_errors(name: str) -> None:
    with pytest.raises(GattDecodeError, match="unknown or unsupported characteristic") as info:
        decode(name, b"\x00\x50")
    assert isinstance(info.value, DomainError)
    assert info.value.offset is None


def test_every_registered_decoder_names_itself() -> None:
    for uuid, (name, _) in DECODERS.items():
        assert resolve(name) == uuid


def test_empty_value_is_a_decode_error_for_every_characteristic() -> None:
    for uuid in DECODERS:
        with pytest.raises(GattDecodeError, match="truncated"):
            decode(uuid, b"")
