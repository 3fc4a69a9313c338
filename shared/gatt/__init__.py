"""Bluetooth SIG health characteristics: bytes → `Reading` (stdlib + pydantic, no Bluetooth I/O)."""

from shared.gatt.errors import GattDecodeError
from shared.gatt.readings import DeviceTimestamp, Quantity, Reading
from shared.gatt.registry import DECODERS, decode, resolve

__all__ = ["DECODERS", "DeviceTimestamp", "GattDecodeError", "Quantity", "Reading", "decode", "resolve"]
