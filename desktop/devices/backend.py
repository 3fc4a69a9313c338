"""Which bleak backend the app uses: the operating system's (default) or bumble (`bumble_backend`).

Chosen by ``INTEGMED_BLE_BACKEND`` (``os``, ``bumble``, or ``simulated`` for a demo with virtual devices)
and, for bumble, ``INTEGMED_BLE_TRANSPORT`` (a
bumble transport name such as ``usb:0``, ``serial:/dev/ttyUSB0@1000000``, ``tcp-client:127.0.0.1:9000``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # bumble is imported where a bumble backend is made: it costs ~0.2 s of the app's start-up
    from desktop.devices.bumble_backend import BumbleCentral

ENV_BACKEND = "INTEGMED_BLE_BACKEND"
ENV_TRANSPORT = "INTEGMED_BLE_TRANSPORT"
DEFAULT_TRANSPORT = "usb:0"


@dataclass(frozen=True)
class BleBackend:
    """What `BleakScanner` / `BleakClient` are constructed with.

    Args:
        name: ``os`` or ``bumble``.
        scanner_kwargs: extra keyword arguments for `BleakScanner` (``backend=…`` and its options).
        client_kwargs: extra keyword arguments for `BleakClient`.
        central: the bumble central, when the backend is bumble (closed with the reader).
    """

    name: str
    scanner_kwargs: Mapping[str, Any] = field(default_factory=dict)
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)
    central: BumbleCentral | None = None

    @classmethod
    def system(cls) -> BleBackend:
        """bleak's backend for this operating system."""
        return cls("os")

    @classmethod
    def bumble(cls, central: BumbleCentral) -> BleBackend:
        """bleak over a bumble central."""
        from desktop.devices.bumble_backend import BumbleClient, BumbleScanner

        return cls(
            "bumble",
            {"backend": BumbleScanner, "bumble": central},
            {"backend": BumbleClient, "bumble": central},
            central,
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> BleBackend:
        """The backend the environment asks for (``INTEGMED_BLE_BACKEND``; default: the OS backend)."""
        env = os.environ if environ is None else environ
        choice = env.get(ENV_BACKEND, "os").strip().lower() or "os"
        if choice == "os":
            return cls.system()
        if choice == "bumble":
            from desktop.devices.bumble_backend import BumbleCentral

            return cls.bumble(BumbleCentral.from_transport(env.get(ENV_TRANSPORT, DEFAULT_TRANSPORT)))
        if choice == "simulated":
            from desktop.devices.sim import simulated_central

            return cls.bumble(simulated_central())
        raise ValueError(f"{ENV_BACKEND}={choice!r}: expected 'os', 'bumble' or 'simulated'")
