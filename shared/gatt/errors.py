"""The one error every GATT decoder raises: which characteristic, at which byte, and why."""

from __future__ import annotations

from shared.errors import DomainError


class GattDecodeError(DomainError):
    """Bytes that cannot be decoded into a reading; never a wrong number instead."""

    code = "gatt.decode"

    def __init__(self, characteristic: str, offset: int | None, reason: str) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"cannot decode {characteristic}{where}: {reason}")
        self.characteristic = characteristic
        self.offset = offset
        self.reason = reason
