"""Record Access Control Point (0x2A52) for glucose meters: the bytes we write and what the answers mean.

Procedure (Glucose Profile; reference §1.7): enable notifications on 0x2A18/0x2A34 and indications on the
RACP, then write an op code with response and collect the stored records as notifications until the RACP
indicates a response code. Only the two procedures the app uses are built here:

* ``04 01`` report the number of stored records (all) → ``05 00 <uint16 count>``;
* ``04 03 01 <uint16 seq>`` / ``01 03 01 <uint16 seq>`` report (the number of) records with sequence number
  ≥ seq → records, then ``06 00 01 01`` (success) or ``06 00 01 06`` (no records found).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum


class OpCode(IntEnum):
    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT = 0x03
    REPORT_NUMBER_OF_RECORDS = 0x04
    NUMBER_OF_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06


class Operator(IntEnum):
    NULL = 0x00
    ALL = 0x01
    LESS_OR_EQUAL = 0x02
    GREATER_OR_EQUAL = 0x03
    WITHIN_RANGE = 0x04
    FIRST = 0x05
    LAST = 0x06


FILTER_SEQUENCE_NUMBER = 0x01


class ResponseCode(IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9
    SERVER_BUSY = 10


RESPONSE_TEXT = {
    ResponseCode.SUCCESS: "success",
    ResponseCode.OP_CODE_NOT_SUPPORTED: "the meter does not support this request",
    ResponseCode.INVALID_OPERATOR: "invalid operator",
    ResponseCode.OPERATOR_NOT_SUPPORTED: "the meter does not support this filter",
    ResponseCode.INVALID_OPERAND: "invalid operand",
    ResponseCode.NO_RECORDS_FOUND: "no records found",
    ResponseCode.ABORT_UNSUCCESSFUL: "abort unsuccessful",
    ResponseCode.PROCEDURE_NOT_COMPLETED: "the meter did not complete the transfer",
    ResponseCode.OPERAND_NOT_SUPPORTED: "operand not supported",
    ResponseCode.SERVER_BUSY: "the meter is busy",
}


class RacpError(Exception):
    """The meter answered a RACP request with something other than success / no records."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _sequence(op: OpCode, first_sequence: int | None) -> bytes:
    if first_sequence is None:
        return bytes([op, Operator.ALL])
    if not 0 <= first_sequence <= 0xFFFF:
        raise ValueError(f"sequence number {first_sequence} is outside 0..65535")
    return bytes([op, Operator.GREATER_OR_EQUAL, FILTER_SEQUENCE_NUMBER]) + struct.pack("<H", first_sequence)


def report_number(first_sequence: int | None = None) -> bytes:
    """``04 01`` (all) or ``04 03 01 <seq>`` (sequence ≥ seq)."""
    return _sequence(OpCode.REPORT_NUMBER_OF_RECORDS, first_sequence)


def report_records(first_sequence: int | None = None) -> bytes:
    """``01 01`` (all) or ``01 03 01 <seq>`` (sequence ≥ seq)."""
    return _sequence(OpCode.REPORT_STORED_RECORDS, first_sequence)


@dataclass(frozen=True)
class Response:
    """A parsed RACP indication: either a count (``count``) or a response code for ``request``."""

    op_code: int
    count: int | None = None
    request: int | None = None
    code: int | None = None

    @property
    def is_success(self) -> bool:
        return self.code == ResponseCode.SUCCESS

    @property
    def is_no_records(self) -> bool:
        return self.code == ResponseCode.NO_RECORDS_FOUND

    def describe(self) -> str:
        if self.count is not None:
            return f"{self.count} stored records"
        try:
            return RESPONSE_TEXT[ResponseCode(self.code or 0)]
        except ValueError:
            return f"response code {self.code}"


def parse(data: bytes) -> Response:
    """Parse a RACP indication; RacpError if it is neither a count nor a response code."""
    if len(data) >= 4 and data[0] == OpCode.NUMBER_OF_RECORDS_RESPONSE and data[1] == Operator.NULL:
        return Response(op_code=data[0], count=struct.unpack_from("<H", data, 2)[0])
    if len(data) >= 4 and data[0] == OpCode.RESPONSE_CODE and data[1] == Operator.NULL:
        return Response(op_code=data[0], request=data[2], code=data[3])
    raise RacpError(f"unexpected RACP indication {data.hex(' ')}")
