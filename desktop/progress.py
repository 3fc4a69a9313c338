"""The `Progress` protocol for long, cancellable work, with console and no-op implementations (no Qt here).

Long work (first sync, a glucose meter's RACP download) is a plain function taking a `Progress`; the GUI
passes a dialog-backed one (`desktop.ui.progress`), the CLI `ConsoleProgress`, tests a recording fake.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO, runtime_checkable


@runtime_checkable
class Progress(Protocol):
    """What long work reports to, from any thread."""

    def set_total(self, total: int) -> None:
        """The number of steps, once known (0: unknown)."""

    def advance(self, steps: int = 1) -> None:
        """`steps` more steps are done."""

    def set_status(self, text: str) -> None:
        """A short sentence on what is happening now."""

    @property
    def cancelled(self) -> bool:
        """True once the user asked to stop; the work then raises `desktop.errors.Cancelled`."""


class NullProgress:
    """Reports nowhere; never cancelled."""

    def set_total(self, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def set_status(self, text: str) -> None:
        pass

    @property
    def cancelled(self) -> bool:
        return False


class ConsoleProgress:
    """Status lines on a stream (stderr by default), at most a few per second."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 0.5) -> None:
        self._stream = stream or sys.stderr
        self._every = every_s
        self._total = 0
        self._done = 0
        self._last = 0.0
        self._started = time.monotonic()

    def set_total(self, total: int) -> None:
        self._total = total

    def advance(self, steps: int = 1) -> None:
        self._done += steps
        now = time.monotonic()
        if now - self._last >= self._every and self._total:
            self._last = now
            rate = self._done / max(now - self._started, 1e-6)
            left = (self._total - self._done) / rate if rate else 0
            self._stream.write(f"  {self._done}/{self._total} ({left:.0f} s left)\n")

    def set_status(self, text: str) -> None:
        self._stream.write(f"{text}\n")

    @property
    def cancelled(self) -> bool:
        return False
