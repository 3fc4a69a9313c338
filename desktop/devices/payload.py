"""What the BLE reader hands to its sink (no bleak import, so services can use it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Payload:
    """One characteristic value as it arrived (before any decoding).

    Args:
        address: the device's Bluetooth address (a per-host UUID on macOS).
        device_name: its advertised name, when known.
        characteristic: 16-bit UUID, upper-case hex (``2A35``).
        data: the bytes.
        received_at: when this PC received them (UTC).
        stored_record: True when it came from a RACP stored-record download.
    """

    address: str
    device_name: str | None
    characteristic: str
    data: bytes
    received_at: datetime
    stored_record: bool = False


@dataclass(frozen=True)
class StoreOutcome:
    """What the sink did with a payload: ``stored`` (new row), ``duplicate``, or ``ignored`` (with why)."""

    status: str
    summary: str = ""
    sequence: int | None = None
