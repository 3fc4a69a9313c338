"""Glucose Measurement 0x2A18 and Glucose Measurement Context 0x2A34.

Measurement: flags · sequence uint16 · base time (Date Time) · [time offset sint16 min] · [concentration SFLOAT
+ type/sample-location uint8] · [sensor status annunciation uint16]. Concentration arrives in SI base units and
is converted exactly: kg/L × 100 000 → mg/dL, mol/L × 1000 → mmol/L (the value as sent is kept as `original`).
The reading's timestamp is the user-facing time, base time + time offset, still device-local; control-solution
records (type 10 or location 4) are marked `control_solution: true` and are not patient glucose.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from shared.gatt.reader import ByteReader, bit_names, flag_names
from shared.gatt.readings import Detail, DeviceTimestamp, Quantity, Reading, converted, exact, quantity

MEASUREMENT_UUID, MEASUREMENT_NAME = "2A18", "glucose_measurement"
CONTEXT_UUID, CONTEXT_NAME = "2A34", "glucose_measurement_context"

TIME_OFFSET, CONCENTRATION, UNITS_MOL, SENSOR_STATUS, CONTEXT_FOLLOWS = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_NAMES = {
    0: "time_offset_present",
    1: "concentration_present",
    2: "units_mol_per_l",
    3: "sensor_status_present",
    4: "context_follows",
}
TYPES = {
    1: "capillary whole blood",
    2: "capillary plasma",
    3: "venous whole blood",
    4: "venous plasma",
    5: "arterial whole blood",
    6: "arterial plasma",
    7: "undetermined whole blood",
    8: "undetermined plasma",
    9: "interstitial fluid",
    10: "control solution",
}
LOCATIONS = {1: "finger", 2: "alternate site test", 3: "earlobe", 4: "control solution", 15: "not available"}
_SENSOR_STATUS = {
    0: "device_battery_low",
    1: "sensor_malfunction",
    2: "sample_size_insufficient",
    3: "strip_insertion_error",
    4: "strip_type_incorrect",
    5: "result_too_high",
    6: "result_too_low",
    7: "temperature_too_high",
    8: "temperature_too_low",
    9: "read_interrupted",
    10: "general_device_fault",
    11: "time_fault",
}


def _named(table: dict[int, str], code: int) -> str:
    return table.get(code, f"reserved ({code})")


def decode_measurement(data: bytes) -> Reading:
    """0x2A18 Glucose Measurement."""
    r = ByteReader(MEASUREMENT_UUID, data)
    flags = r.flags(1, 0x1F)
    details: dict[str, Detail] = {"sequence_number": r.uint(2, "sequence number")}
    base = r.date_time("base time")
    timestamp = base
    details["base_time"] = base.local.isoformat() if base.local else None
    if flags & TIME_OFFSET:
        offset = r.sint(2, "time offset")
        details["time_offset_minutes"] = offset
        if base.local is not None:
            try:
                user_facing = base.local + timedelta(minutes=offset)
            except OverflowError:
                raise r.fail(f"base time + time offset ({offset} min) is outside the calendar", 3) from None
            timestamp = DeviceTimestamp(
                local=user_facing,
                year=user_facing.year,
                month=user_facing.month,
                day=user_facing.day,
                hours=user_facing.hour,
                minutes=user_facing.minute,
                seconds=user_facing.second,
            )
    values: dict[str, Quantity] = {}
    if flags & CONCENTRATION:
        if flags & UNITS_MOL:
            sent = quantity(r.sfloat("glucose concentration"), "mol/L")
            values["glucose"] = converted(sent, "mmol/L", Decimal(1000))
        else:
            sent = quantity(r.sfloat("glucose concentration"), "kg/L")
            values["glucose"] = converted(sent, "mg/dL", Decimal(100000))
        type_location = r.uint(1, "type-sample location")
        kind, location = type_location & 0x0F, type_location >> 4
        details["sample_type"] = _named(TYPES, kind)
        details["sample_location"] = _named(LOCATIONS, location)
        details["control_solution"] = kind == 10 or location == 4
    if flags & SENSOR_STATUS:
        status = r.uint(2, "sensor status annunciation")
        details["sensor_status"] = bit_names(status, _SENSOR_STATUS)
        if status & 0xF000:
            details["sensor_status_reserved_bits"] = f"{status & 0xF000:#06x}"
    details["context_follows"] = bool(flags & CONTEXT_FOLLOWS)
    r.end()
    return Reading(
        characteristic=MEASUREMENT_UUID,
        name=MEASUREMENT_NAME,
        flags=flags,
        flag_names=flag_names(flags, _FLAG_NAMES),
        values=values,
        details=details,
        timestamp=timestamp,
        raw_hex=data.hex(),
    )


CARBS, MEAL, TESTER_HEALTH, EXERCISE, MEDICATION, MEDICATION_LITRES, HBA1C, EXTENDED = (1 << b for b in range(8))
_CONTEXT_FLAG_NAMES = {
    0: "carbohydrate_present",
    1: "meal_present",
    2: "tester_health_present",
    3: "exercise_present",
    4: "medication_present",
    5: "medication_units_litres",
    6: "hba1c_present",
    7: "extended_flags_present",
}
CARB_IDS = {1: "breakfast", 2: "lunch", 3: "dinner", 4: "snack", 5: "drink", 6: "supper", 7: "brunch"}
MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS = {1: "self", 2: "health care professional", 3: "lab test", 15: "not available"}
HEALTH = {
    1: "minor health issues",
    2: "major health issues",
    3: "during menses",
    4: "under stress",
    5: "no health issues",
    15: "not available",
}
MEDICATIONS = {
    1: "rapid acting insulin",
    2: "short acting insulin",
    3: "intermediate acting insulin",
    4: "long acting insulin",
    5: "pre-mixed insulin",
}


def decode_context(data: bytes) -> Reading:
    """0x2A34 Glucose Measurement Context (carbohydrate kg → g, medication kg → mg or L → mL, originals kept)."""
    r = ByteReader(CONTEXT_UUID, data)
    flags = r.flags(1, 0xFF)
    details: dict[str, Detail] = {"sequence_number": r.uint(2, "sequence number")}
    values: dict[str, Quantity] = {}
    if flags & EXTENDED:
        extended = r.uint(1, "extended flags")
        if extended:
            raise r.fail(f"reserved extended flag bits set ({extended:#04x})", r.offset - 1)
    if flags & CARBS:
        details["carbohydrate"] = _named(CARB_IDS, r.uint(1, "carbohydrate id"))
        values["carbohydrate"] = converted(quantity(r.sfloat("carbohydrate"), "kg"), "g", Decimal(1000))
    if flags & MEAL:
        details["meal"] = _named(MEALS, r.uint(1, "meal"))
    if flags & TESTER_HEALTH:
        code = r.uint(1, "tester-health")
        details["tester"] = _named(TESTERS, code & 0x0F)
        details["health"] = _named(HEALTH, code >> 4)
    if flags & EXERCISE:
        duration = r.uint(2, "exercise duration")
        if duration == 0xFFFF:
            details["exercise_duration"] = "overrun"
        else:
            values["exercise_duration"] = exact(duration, "s")
        values["exercise_intensity"] = exact(r.uint(1, "exercise intensity"), "%")
    if flags & MEDICATION:
        details["medication"] = _named(MEDICATIONS, r.uint(1, "medication id"))
        if flags & MEDICATION_LITRES:
            values["medication"] = converted(quantity(r.sfloat("medication"), "L"), "mL", Decimal(1000))
        else:
            values["medication"] = converted(quantity(r.sfloat("medication"), "kg"), "mg", Decimal(1_000_000))
    if flags & HBA1C:
        values["hba1c"] = quantity(r.sfloat("HbA1c"), "%")
    r.end()
    return Reading(
        characteristic=CONTEXT_UUID,
        name=CONTEXT_NAME,
        flags=flags,
        flag_names=flag_names(flags, _CONTEXT_FLAG_NAMES),
        values=values,
        details=details,
        raw_hex=data.hex(),
    )
