"""Body Composition Measurement 0x2A9C (flags uint16).

flags · body fat uint16 × 0.1 % (0xFFFF = measurement unsuccessful) · [Date Time] · [user id] · [basal metabolism
uint16 kJ] · [muscle % × 0.1] · [muscle mass] · [fat-free mass] · [soft lean mass] · [body water mass] ·
[impedance × 0.1 Ω] · [weight] · [height]. Masses × 0.005 kg (SI) or × 0.01 lb (imperial, converted exactly to kg
with the pounds kept); height × 0.001 m or × 0.1 in (converted to m). Bit 12 says the measurement is split over
several packets; each packet is decoded on its own and marked `multiple_packet: true`.
"""

from __future__ import annotations

from shared.gatt.reader import ByteReader, flag_names
from shared.gatt.readings import Detail, Quantity, Reading, converted, exact
from shared.gatt.sfloat import Special
from shared.gatt.weight import KG_PER_LB, M_PER_IN

UUID, NAME = "2A9C", "body_composition_measurement"
_FLAG_NAMES = {
    0: "units_imperial",
    1: "time_stamp_present",
    2: "user_id_present",
    3: "basal_metabolism_present",
    4: "muscle_percentage_present",
    5: "muscle_mass_present",
    6: "fat_free_mass_present",
    7: "soft_lean_mass_present",
    8: "body_water_mass_present",
    9: "impedance_present",
    10: "weight_present",
    11: "height_present",
    12: "multiple_packet_measurement",
}
_MASSES = ((5, "muscle_mass"), (6, "fat_free_mass"), (7, "soft_lean_mass"), (8, "body_water_mass"))


def _mass(r: ByteReader, field: str, imperial: bool) -> Quantity:
    raw = r.uint(2, field.replace("_", " "))
    return converted(exact(raw, "lb", -2), "kg", KG_PER_LB) if imperial else exact(raw * 5, "kg", -3)


def decode(data: bytes) -> Reading:
    r = ByteReader(UUID, data)
    flags = r.flags(2, 0x1FFF)
    imperial = bool(flags & 0x01)
    fat = r.uint(2, "body fat percentage")
    values: dict[str, Quantity] = {
        "body_fat": Quantity(value=None, unit="%", special=Special.NAN) if fat == 0xFFFF else exact(fat, "%", -1)
    }
    details: dict[str, Detail] = {
        "measurement_unsuccessful": fat == 0xFFFF,
        "multiple_packet": bool(flags & (1 << 12)),
    }
    timestamp = r.date_time() if flags & 0x02 else None
    if flags & 0x04:
        user = r.uint(1, "user id")
        details["user_id"] = "unknown" if user == 0xFF else user
    if flags & 0x08:
        values["basal_metabolism"] = exact(r.uint(2, "basal metabolism"), "kJ")
    if flags & 0x10:
        values["muscle_percentage"] = exact(r.uint(2, "muscle percentage"), "%", -1)
    for bit, name in _MASSES:
        if flags & (1 << bit):
            values[name] = _mass(r, name, imperial)
    if flags & (1 << 9):
        values["impedance"] = exact(r.uint(2, "impedance"), "Ω", -1)
    if flags & (1 << 10):
        values["weight"] = _mass(r, "weight", imperial)
    if flags & (1 << 11):
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
