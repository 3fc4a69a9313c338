"""RACP request bytes and response parsing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.devices import racp


class TestRequests:
    def test_all_records(self) -> None:
        assert (racp.report_number(), racp.report_records()) == (b"\x04\x01", b"\x01\x01")

    @given(st.integers(0, 0xFFFF))
    def test_greater_or_equal_sequence_is_little_endian(self, sequence: int) -> None:
        request = racp.report_records(sequence)
        assert request[:3] == b"\x01\x03\x01"
        assert struct.unpack("<H", request[3:])[0] == sequence
        assert racp.report_number(sequence)[0] == 0x04

    def test_sequence_outside_uint16_is_refused(self) -> None:
        with pytest.raises(ValueError, match="outside"):
            racp.report_records(0x10000)


class TestResponses:
    @given(st.integers(0, 0xFFFF))
    def test_number_of_records(self, count: int) -> None:
        parsed = racp.parse(b"\x05\x00" + struct.pack("<H", count))
        assert parsed.count == count and parsed.code is None

    @given(st.integers(1, 6), st.integers(0, 255))
    def test_response_codes(self, request: int, code: int) -> None:
        parsed = racp.parse(bytes([0x06, 0x00, request, code]))
        assert (parsed.request, parsed.code, parsed.count) == (request, code, None)
        assert parsed.describe()

    def test_success_and_no_records(self) -> None:
        assert racp.parse(bytes.fromhex("06000101")).is_success
        assert racp.parse(bytes.fromhex("06000106")).is_no_records
        assert racp.parse(bytes.fromhex("06000108")).describe() == "the meter did not complete the transfer"

    @given(st.binary(max_size=8))
    def test_anything_else_is_a_clear_error(self, data: bytes) -> None:
        if len(data) >= 4 and data[0] in (5, 6) and data[1] == 0:
            return
        with pytest.raises(racp.RacpError, match="unexpected RACP indication"):
            racp.parse(data)
