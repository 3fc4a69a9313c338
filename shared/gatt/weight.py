"""Weight Measurement 0x2A9D: flags · weight uint16 · [Date Time] · [user id] · [BMI uint16 + height uint16].

SI: weight × 0.005 kg, height × 0.001 m. Imperial: weight × 0.01 lb, height × 0.1 in, converted exactly to kg
(1 lb = 0.45359237 kg) and m (1 in = 0.0254 m) with the value as sent kept as `original`. BMI × 0.1 kg/m².
Weight 0xFFFF means "measurement unsuccessful": no value (special NaN) and `measurement_unsuccessful: true`.
"""

from __future__ import annotations

from decimal import Decimal

from shared.gatt.reader import ByteReader, flag_names
from shared.gatt.readings import Detail, Quantity, Reading, converted, exact
from shared.gatt.sfloat import Special

UUID, NAME = "2A9D", "weight_measurement"
IMPERIAL, TIME_STAMP, USER_ID, BMI_HEIGHT = 0x01, 0x02, 0x04, 0x08
_FLAG_NAMES = {0: "units_imperial", 1: "time_stamp_present", 2: "user_id_present", 3: "bmi_and_height_present"}
KG_PER_LB = Decimal("0.45359237")
M_PER_IN = Decimal("0.0254")


def decode(data: bytes) -> Reading:
    r = ByteReader(UUID, data)
    flags = r.flags(1, 0x0F)
    imperial = bool(flags & IMPERIAL)
    raw_weight = r.uint(2, "weight")
    details: dict[str, Detail] = {"measurement_unsuccessful": raw_weight == 0xFFFF}
    weight: Quantity
    if raw_weight == 0xFFFF:
        weight = Quantity(value=None, unit="kg", special=Special.NAN)
    elif imperial:
        weight = converted(exact(raw_weight, "lb", -2), "kg", KG_PER_LB)
    else:
        weight = exact(raw_weight * 5, "kg", -3)
    values = {"weight": weight}
    timestamp = r.date_time() if flags & TIME_STAMP else None
    if flags & USER_ID:
        user = r.uint(1, "user id")
        details["user_id"] = "unknown" if user == 0xFF else user
    if flags & BMI_HEIGHT:
        values["bmi"] = exact(r.uint(2, "BMI"), "kg/m²", -1)
        height = r.uint(2, "height")
        values["height"] = converted(exact(height, "in", -1), "m", M_PER_IN) if imperial else exact(height, "m", -3)
    r.end()
    return Reading(
        characteristic=UUID,
        name=NAME,
        flags=flags,
        flag_names=flag_names(flags, _FLAG_NAMES),
        values=values,
        details=details,
        timestamp=timestamp,
        raw_hex=data.hex(),
    )
