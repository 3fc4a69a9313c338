"""`integmed devices decode CHARACTERISTIC HEX`: decode captured characteristic bytes and print them as JSON.

CHARACTERISTIC is a 16-bit UUID (``2A35``, ``0x2a35``), a full SIG 128-bit UUID or a name
(``blood_pressure_measurement``); HEX may contain spaces or colons (``1e:78:00``). Exit 0 with the reading as
JSON on stdout; exit 1 with ``integmed: <reason>`` on stderr when the hex or the bytes cannot be decoded.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from desktop.config import DesktopSettings
from shared.gatt import GattDecodeError, decode

EXIT_OK, EXIT_BAD_INPUT = 0, 1


def parse_hex(text: str) -> bytes:
    """Bytes from hex text with optional spaces, colons, dashes or a 0x prefix; ValueError if not hex."""
    cleaned = re.sub(r"[\s:.\-]", "", text)
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise ValueError("no bytes given")
    if len(cleaned) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", cleaned):
        raise ValueError(f"{text!r} is not a whole number of hex bytes")
    return bytes.fromhex(cleaned)


def _decode(args: argparse.Namespace, settings: DesktopSettings) -> int:
    try:
        data = parse_hex(" ".join(args.hex))
    except ValueError as exc:
        sys.stderr.write(f"integmed: bad HEX: {exc}\n")
        return EXIT_BAD_INPUT
    try:
        reading = decode(args.characteristic, data)
    except GattDecodeError as exc:
        sys.stderr.write(f"integmed: {exc.message}\n")
        return EXIT_BAD_INPUT
    sys.stdout.write(json.dumps(reading.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def add_commands(commands: Any) -> None:
    """Register ``devices decode CHARACTERISTIC HEX`` on the ``integmed`` sub-parsers."""
    devices = commands.add_parser("devices", help="Bluetooth health devices: decode captured bytes")
    actions = devices.add_subparsers(dest="devices_action", metavar="ACTION", required=True)
    decoding = actions.add_parser(
        "decode",
        help="decode a characteristic value (hex) and print the reading as JSON",
        description=(
            "Decode captured bytes of a Bluetooth SIG health characteristic, e.g. "
            "`integmed devices decode 2A35 '1e 79 00 50 00 64 00'`. Timestamps are the device's local clock "
            "(no time zone). Exit 0 with JSON on stdout, 1 with the reason on stderr."
        ),
    )
    decoding.add_argument(
        "characteristic", metavar="CHARACTERISTIC", help="2A37, 0x2a37, a 128-bit SIG UUID or heart_rate_measurement"
    )
    decoding.add_argument("hex", metavar="HEX", nargs="+", help="the value as hex; spaces or colons allowed")
    decoding.set_defaults(handler=_decode)
