"""Which Bluetooth SIG services and characteristics the app uses, as bleak's 128-bit UUID strings.

The scan filter is `HEALTH_SERVICES`; after connecting the reader subscribes to every characteristic in
`MEASUREMENTS` that the device exposes (bleak's ``start_notify`` writes the right CCCD value for notify or
indicate), reads Battery Level and Current Time where exposed, and drives RACP on glucometers.
"""

from __future__ import annotations

from bleak.uuids import normalize_uuid_16


def sig(short: int) -> str:
    """The 128-bit lower-case UUID string of a 16-bit SIG UUID (bleak's form)."""
    return normalize_uuid_16(short)


def short_uuid(uuid: str) -> str:
    """``0000xxxx-0000-1000-8000-00805f9b34fb`` → ``XXXX``; other UUIDs unchanged (upper case)."""
    text = uuid.lower()
    if len(text) == 36 and text.startswith("0000") and text.endswith("-0000-1000-8000-00805f9b34fb"):
        return text[4:8].upper()
    return text.upper()


HEART_RATE = sig(0x180D)
BLOOD_PRESSURE = sig(0x1810)
HEALTH_THERMOMETER = sig(0x1809)
GLUCOSE = sig(0x1808)
PULSE_OXIMETER = sig(0x1822)
WEIGHT_SCALE = sig(0x181D)
BODY_COMPOSITION = sig(0x181B)
BATTERY = sig(0x180F)
CURRENT_TIME_SERVICE = sig(0x1805)

HEALTH_SERVICES: tuple[str, ...] = (
    HEART_RATE,
    BLOOD_PRESSURE,
    HEALTH_THERMOMETER,
    GLUCOSE,
    PULSE_OXIMETER,
    WEIGHT_SCALE,
    BODY_COMPOSITION,
)
"""Services a device must advertise to show up in a scan (a known device is also accepted by address)."""

SERVICE_NAMES = {
    HEART_RATE: "Heart rate",
    BLOOD_PRESSURE: "Blood pressure",
    HEALTH_THERMOMETER: "Thermometer",
    GLUCOSE: "Glucose",
    PULSE_OXIMETER: "Pulse oximeter",
    WEIGHT_SCALE: "Weight scale",
    BODY_COMPOSITION: "Body composition",
}

HEART_RATE_MEASUREMENT = sig(0x2A37)
BLOOD_PRESSURE_MEASUREMENT = sig(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = sig(0x2A36)
TEMPERATURE_MEASUREMENT = sig(0x2A1C)
GLUCOSE_MEASUREMENT = sig(0x2A18)
GLUCOSE_MEASUREMENT_CONTEXT = sig(0x2A34)
PLX_SPOT_CHECK = sig(0x2A5E)
PLX_CONTINUOUS = sig(0x2A5F)
WEIGHT_MEASUREMENT = sig(0x2A9D)
BODY_COMPOSITION_MEASUREMENT = sig(0x2A9C)
RECORD_ACCESS_CONTROL_POINT = sig(0x2A52)
BATTERY_LEVEL = sig(0x2A19)
CURRENT_TIME = sig(0x2A2B)

MEASUREMENTS: tuple[str, ...] = (
    HEART_RATE_MEASUREMENT,
    BLOOD_PRESSURE_MEASUREMENT,
    INTERMEDIATE_CUFF_PRESSURE,
    TEMPERATURE_MEASUREMENT,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    PLX_SPOT_CHECK,
    PLX_CONTINUOUS,
    WEIGHT_MEASUREMENT,
    BODY_COMPOSITION_MEASUREMENT,
)
"""Characteristics the reader subscribes to (notify or indicate) when the device has them."""

LIVE_ONLY: frozenset[str] = frozenset({INTERMEDIATE_CUFF_PRESSURE})
"""Live progress values that are shown but not stored as readings (the cuff pressure while inflating)."""
