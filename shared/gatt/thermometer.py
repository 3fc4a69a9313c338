"""Temperature Measurement 0x2A1C and Intermediate Temperature 0x2A1E (same layout).

flags · temperature FLOAT (°C or °F) · [Date Time] · [temperature type uint8]. °F values are also given in °C
((°F − 32) × 5/9, rounded to 0.01 °C) with the °F value kept as `original`.
"""

from __future__ import annotations

from decimal import Decimal

from shared.gatt.reader import ByteReader, flag_names
from shared.gatt.readings import Detail, Reading, converted, quantity

MEASUREMENT_UUID, MEASUREMENT_NAME = "2A1C", "temperature_measurement"
INTERMEDIATE_UUID, INTERMEDIATE_NAME = "2A1E", "intermediate_temperature"

UNITS_FAHRENHEIT = 0x01
TIME_STAMP = 0x02
TEMPERATURE_TYPE = 0x04
_FLAG_NAMES = {0: "units_fahrenheit", 1: "time_stamp_present", 2: "temperature_type_present"}
TEMPERATURE_TYPES = {
    1: "armpit",
    2: "body (general)",
    3: "ear (usually earlobe)",
    4: "finger",
    5: "gastro-intestinal tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum (ear drum)",
}


def _decode(uuid: str, name: str, data: bytes) -> Reading:
    r = ByteReader(uuid, data)
    flags = r.flags(1, 0x07)
    fahrenheit = bool(flags & UNITS_FAHRENHEIT)
    sent = quantity(r.float32("temperature"), "°F" if fahrenheit else "°C")
    temperature = converted(sent, "°C", Decimal(5) / Decimal(9), Decimal(-32), places=2) if fahrenheit else sent
    timestamp = r.date_time() if flags & TIME_STAMP else None
    details: dict[str, Detail] = {}
    if flags & TEMPERATURE_TYPE:
        code = r.uint(1, "temperature type")
        details["temperature_type"] = TEMPERATURE_TYPES.get(code, f"reserved ({code})")
    r.end()
    return Reading(
        characteristic=uuid,
        name=name,
        flags=flags,
        flag_names=flag_names(flags, _FLAG_NAMES),
        values={"temperature": temperature},
        details=details,
        timestamp=timestamp,
        raw_hex=data.hex(),
    )


def decode_measurement(data: bytes) -> Reading:
    """0x2A1C Temperature Measurement."""
    return _decode(MEASUREMENT_UUID, MEASUREMENT_NAME, data)


def decode_intermediate(data: bytes) -> Reading:
    """0x2A1E Intermediate Temperature."""
    return _decode(INTERMEDIATE_UUID, INTERMEDIATE_NAME, data)
