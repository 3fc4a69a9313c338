"""`decode(characteristic, data)`: the characteristic named by 16-bit UUID, 128-bit SIG UUID or snake_case name."""

from __future__ import annotations

import re
from collections.abc import Callable

from shared.gatt import blood_pressure, body_composition, current_time, glucose, heart_rate, plx, thermometer, weight
from shared.gatt.errors import GattDecodeError
from shared.gatt.readings import Reading

Decoder = Callable[[bytes], Reading]

DECODERS: dict[str, tuple[str, Decoder]] = {
    heart_rate.UUID: (heart_rate.NAME, heart_rate.decode),
    blood_pressure.BPM_UUID: (blood_pressure.BPM_NAME, blood_pressure.decode_measurement),
    blood_pressure.ICP_UUID: (blood_pressure.ICP_NAME, blood_pressure.decode_intermediate_cuff_pressure),
    thermometer.MEASUREMENT_UUID: (thermometer.MEASUREMENT_NAME, thermometer.decode_measurement),
    thermometer.INTERMEDIATE_UUID: (thermometer.INTERMEDIATE_NAME, thermometer.decode_intermediate),
    glucose.MEASUREMENT_UUID: (glucose.MEASUREMENT_NAME, glucose.decode_measurement),
    glucose.CONTEXT_UUID: (glucose.CONTEXT_NAME, glucose.decode_context),
    plx.SPOT_UUID: (plx.SPOT_NAME, plx.decode_spot_check),
    plx.CONTINUOUS_UUID: (plx.CONTINUOUS_NAME, plx.decode_continuous),
    weight.UUID: (weight.NAME, weight.decode),
    body_composition.UUID: (body_composition.NAME, body_composition.decode),
    current_time.UUID: (current_time.NAME, current_time.decode),
}
_BY_NAME = {name: uuid for uuid, (name, _) in DECODERS.items()}
_SIG_128 = re.compile(r"0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb")
_SHORT = re.compile(r"(?:0x)?([0-9a-f]{4})")


def resolve(characteristic: str) -> str:
    """The 16-bit UUID (upper-case hex) of a supported characteristic; GattDecodeError if unknown."""
    text = characteristic.strip().lower()
    match = _SIG_128.fullmatch(text) or _SHORT.fullmatch(text)
    uuid = match.group(1).upper() if match else _BY_NAME.get(re.sub(r"[\s-]+", "_", text))
    if uuid is None or uuid not in DECODERS:
        supported = ", ".join(f"{u} ({n})" for u, (n, _) in DECODERS.items())
        raise GattDecodeError(characteristic, None, f"unknown or unsupported characteristic; supported: {supported}")
    return uuid


def decode(characteristic: str, data: bytes) -> Reading:
    """Decode `data` as `characteristic`; GattDecodeError for unknown characteristics or bad bytes."""
    return DECODERS[resolve(characteristic)][1](bytes(data))
