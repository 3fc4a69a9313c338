"""Heart Rate Measurement 0x2A37: flags · HR (uint8 or uint16 bpm) · [energy uint16 kJ] · [RR uint16 × n]."""

from __future__ import annotations

from decimal import Decimal

from shared.gatt.reader import ByteReader, flag_names
from shared.gatt.readings import Quantity, Reading, converted, exact

UUID = "2A37"
NAME = "heart_rate_measurement"

HR_UINT16 = 0x01
CONTACT_DETECTED = 0x02
CONTACT_SUPPORTED = 0x04
ENERGY = 0x08
RR = 0x10
_FLAG_NAMES = {
    0: "heart_rate_uint16",
    1: "sensor_contact_detected",
    2: "sensor_contact_supported",
    3: "energy_expended_present",
    4: "rr_intervals_present",
}


def decode(data: bytes) -> Reading:
    r = ByteReader(UUID, data)
    flags = r.flags(1, 0x1F)
    heart_rate = r.uint(2 if flags & HR_UINT16 else 1, "heart rate")
    values: dict[str, Quantity] = {"heart_rate": exact(heart_rate, "bpm")}
    if flags & ENERGY:
        values["energy_expended"] = exact(r.uint(2, "energy expended"), "kJ")
    rr: list[Quantity] = []
    if flags & RR:
        if r.remaining == 0:
            raise r.fail("truncated: RR-interval flag set but no RR interval follows")
        while r.remaining:
            raw = exact(r.uint(2, "RR interval"), "1/1024 s")
            rr.append(converted(raw, "s", Decimal(1) / Decimal(1024)))
    r.end()
    if flags & CONTACT_SUPPORTED:
        contact = "detected" if flags & CONTACT_DETECTED else "not detected"
    else:
        contact = "not supported"
    return Reading(
        characteristic=UUID,
        name=NAME,
        flags=flags,
        flag_names=flag_names(flags, _FLAG_NAMES),
        values=values,
        series={"rr_intervals": rr} if flags & RR else {},
        details={"sensor_contact": contact},
        raw_hex=data.hex(),
    )
