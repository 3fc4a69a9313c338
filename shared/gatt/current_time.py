"""Current Time 0x2A2B: Date Time (7) · day of week uint8 · fractions256 uint8 · adjust reason uint8 (10 bytes)."""

from __future__ import annotations

from shared.gatt.reader import ByteReader, bit_names
from shared.gatt.readings import Reading, exact

UUID = "2A2B"
NAME = "current_time"
DAYS = {0: "unknown", 1: "Monday", 2: "Tuesday", 3: "Wednesday", 4: "Thursday", 5: "Friday", 6: "Saturday", 7: "Sunday"}
_ADJUST = {0: "manual_time_update", 1: "external_reference_time_update", 2: "time_zone_change", 3: "dst_change"}


def decode(data: bytes) -> Reading:
    r = ByteReader(UUID, data)
    timestamp = r.date_time("exact time")
    day = r.uint(1, "day of week")
    if day not in DAYS:
        raise r.fail(f"day of week {day} is out of range (0 unknown, 1 Monday … 7 Sunday)", r.offset - 1)
    fractions = r.uint(1, "fractions256")
    reason = r.uint(1, "adjust reason")
    if reason & 0xF0:
        raise r.fail(f"reserved adjust-reason bits set ({reason & 0xF0:#04x})", r.offset - 1)
    r.end()
    return Reading(
        characteristic=UUID,
        name=NAME,
        flags=reason,
        flag_names=bit_names(reason, _ADJUST),
        values={"fractions": exact(fractions, "1/256 s")},
        details={"day_of_week": DAYS[day]},
        timestamp=timestamp,
        raw_hex=data.hex(),
    )
