"""Emit Python-declared Qt signals through `emit()`, which works around a reference-count bug in PySide6 6.12.0.

In PySide6 6.12.0, `SignalInstance.emit()` returns `True` (or `False`) without taking a reference to it, so
each call leaves `True` with one reference fewer. After a few hundred emits CPython aborts the whole process
with "Fatal Python error: bool_dealloc: deallocating True or False". PySide6 6.11.3 does not have the bug.
This module checks once, at import, whether the installed PySide6 drops the reference, and if it does,
`emit()` gives the returned object its reference back. On a fixed PySide6 `emit()` is a plain
`signal.emit(*args)`.

Use `emit(self.something_changed, value)` instead of `self.something_changed.emit(value)` anywhere in the
desktop app; `tests/desktop/ui/test_signals.py` emits thousands of times to prove the process survives.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal, SignalInstance

_PROBE_EMITS = 32


class _Probe(QObject):
    probed = Signal()


def _probe_emit() -> tuple[int, int]:
    """Emit a throwaway signal a few times; returns how many references True and False lost."""
    probe = _Probe()
    true_before, false_before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(_PROBE_EMITS):
        probe.probed.emit()
    return true_before - sys.getrefcount(True), false_before - sys.getrefcount(False)


def _restore(returned: object, count: int = 1) -> None:
    for _ in range(count):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(returned))


_true_lost, _false_lost = _probe_emit()
# Other threads may move the counts a little; the bug moves them by one per emit.
EMIT_DROPS_REFERENCE = _true_lost + _false_lost >= _PROBE_EMITS // 2
if EMIT_DROPS_REFERENCE:
    # Give back what the probe itself took, before anything else runs.
    _restore(True, max(0, _true_lost))
    _restore(False, max(0, _false_lost))


def emit(signal: SignalInstance, *args: object) -> None:
    """Emit `signal` with `args`, safely on every PySide6 version."""
    # The stubs say emit() returns None; at run time it returns a bool (the object whose reference it drops).
    returned: object = signal.emit(*args)  # type: ignore[func-returns-value]
    if EMIT_DROPS_REFERENCE and returned is not None:
        _restore(returned)
