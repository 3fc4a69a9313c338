"""Blood Pressure Measurement 0x2A35 and Intermediate Cuff Pressure 0x2A36 (same layout).

flags · systolic · diastolic · MAP (SFLOAT, mmHg or kPa) · [Date Time] · [pulse SFLOAT bpm] · [user id uint8]
· [measurement status uint16]. For 0x2A36 the first value is the current cuff pressure (the others NaN).
kPa values are also given in mmHg (1 kPa = 7.50062 mmHg, rounded to 0.1 mmHg), the kPa value kept as `original`.
"""

from __future__ import annotations

from decimal import Decimal

from shared.gatt.reader import ByteReader, bit_names, flag_names
from shared.gatt.readings import Detail, Quantity, Reading, converted, quantity

BPM_UUID, BPM_NAME = "2A35", "blood_pressure_measurement"
ICP_UUID, ICP_NAME = "2A36", "intermediate_cuff_pressure"

UNITS_KPA = 0x01
TIME_STAMP = 0x02
PULSE_RATE = 0x04
USER_ID = 0x08
STATUS = 0x10
_FLAG_NAMES = {
    0: "units_kpa",
    1: "time_stamp_present",
    2: "pulse_rate_present",
    3: "user_id_present",
    4: "measurement_status_present",
}
_STATUS_NAMES = {0: "body_movement", 1: "cuff_too_loose", 2: "irregular_pulse", 5: "improper_position"}
_PULSE_RANGE = {0: "within range", 1: "above upper limit", 2: "below lower limit", 3: "reserved"}
MMHG_PER_KPA = Decimal("7.50062")


def _pressure(r: ByteReader, field: str, kpa: bool) -> Quantity:
    sent = quantity(r.sfloat(field), "kPa" if kpa else "mmHg")
    return converted(sent, "mmHg", MMHG_PER_KPA, places=1) if kpa else sent


def _decode(uuid: str, name: str, data: bytes) -> Reading:
    r = ByteReader(uuid, data)
    flags = r.flags(1, 0x1F)
    kpa = bool(flags & UNITS_KPA)
    first = "cuff_pressure" if uuid == ICP_UUID else "systolic"
    values = {
        first: _pressure(r, first.replace("_", " "), kpa),
        "diastolic": _pressure(r, "diastolic", kpa),
        "mean_arterial_pressure": _pressure(r, "mean arterial pressure", kpa),
    }
    timestamp = r.date_time() if flags & TIME_STAMP else None
    if flags & PULSE_RATE:
        values["pulse_rate"] = quantity(r.sfloat("pulse rate"), "bpm")
    details: dict[str, Detail] = {}
    if flags & USER_ID:
        user = r.uint(1, "user id")
        details["user_id"] = "unknown" if user == 0xFF else user
    if flags & STATUS:
        status = r.uint(2, "measurement status")
        details["measurement_status"] = bit_names(status, _STATUS_NAMES)
        details["pulse_rate_range"] = _PULSE_RANGE[(status >> 3) & 0x3]
        if status & 0xFFC0:
            details["measurement_status_reserved_bits"] = f"{status & 0xFFC0:#06x}"
    r.end()
    return Reading(
        characteristic=uuid,
        name=name,
        flags=flags,
        flag_names=flag_names(flags, _FLAG_NAMES),
        values=values,
        details=details,
        timestamp=timestamp,
        raw_hex=data.hex(),
    )


def decode_measurement(data: bytes) -> Reading:
    """0x2A35 Blood Pressure Measurement."""
    return _decode(BPM_UUID, BPM_NAME, data)


def decode_intermediate_cuff_pressure(data: bytes) -> Reading:
    """0x2A36 Intermediate Cuff Pressure."""
    return _decode(ICP_UUID, ICP_NAME, data)
