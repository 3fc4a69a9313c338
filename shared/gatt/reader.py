"""A cursor over characteristic bytes that reports the offset and the field when the bytes run out."""

from __future__ import annotations

from datetime import datetime

from shared.gatt.errors import GattDecodeError
from shared.gatt.readings import DeviceTimestamp
from shared.gatt.sfloat import MedValue, decode_float, decode_sfloat


class ByteReader:
    """Little-endian fields read in order; every read names its field for the error message."""

    def __init__(self, characteristic: str, data: bytes) -> None:
        self.characteristic = characteristic
        self.data = data
        self.offset = 0

    def fail(self, reason: str, offset: int | None = None) -> GattDecodeError:
        return GattDecodeError(self.characteristic, self.offset if offset is None else offset, reason)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int, field: str) -> bytes:
        if self.remaining < size:
            raise self.fail(
                f"truncated: {field} needs {size} byte(s), {self.remaining} left (value is {len(self.data)} byte(s))"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "little")

    def sint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "little", signed=True)

    def sfloat(self, field: str) -> MedValue:
        return decode_sfloat(self.uint(2, field))

    def float32(self, field: str) -> MedValue:
        return decode_float(self.uint(4, field))

    def flags(self, size: int, defined_bits: int) -> int:
        """The flags field; reserved (RFU) bits set are an error, since the layout would then be unknown."""
        flags = self.uint(size, "flags")
        reserved = flags & ~defined_bits & ((1 << (8 * size)) - 1)
        if reserved:
            raise self.fail(f"reserved flag bits set ({reserved:#0{2 + 2 * size}x} in flags {flags:#x})", 0)
        return flags

    def date_time(self, field: str = "time stamp") -> DeviceTimestamp:
        start = self.offset
        year = self.uint(2, f"{field} year")
        month, day, hours, minutes, seconds = self.take(5, field)
        checks = (
            (year == 0 or 1582 <= year <= 9999, f"year {year}"),
            (month <= 12, f"month {month}"),
            (day <= 31, f"day {day}"),
            (hours <= 23, f"hours {hours}"),
            (minutes <= 59, f"minutes {minutes}"),
            (seconds <= 59, f"seconds {seconds}"),
        )
        for ok, what in checks:
            if not ok:
                raise self.fail(f"{field}: {what} is out of range", start)
        local = None
        if year and month and day:
            try:
                local = datetime(year, month, day, hours, minutes, seconds)  # device-local: naive on purpose
            except ValueError as exc:
                raise self.fail(f"{field}: {exc}", start) from None
        return DeviceTimestamp(
            local=local, year=year, month=month, day=day, hours=hours, minutes=minutes, seconds=seconds
        )

    def end(self) -> None:
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected trailing byte(s)")


def flag_names(flags: int, names: dict[int, str]) -> list[str]:
    return [name for bit, name in names.items() if flags & (1 << bit)]


def bit_names(value: int, names: dict[int, str]) -> list[str]:
    return [name for bit, name in names.items() if value & (1 << bit)]
