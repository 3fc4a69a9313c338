"""`emit()` keeps the process alive on PySide6 6.12.0, whose SignalInstance.emit drops a reference to True."""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

from desktop.ui import signals
from desktop.ui.signals import emit


class _Emitter(QObject):
    happened = Signal(int)
    done = Signal()


class TestEmit:
    def test_thousands_of_emits_leave_true_and_false_alone(self) -> None:
        emitter = _Emitter()
        received: list[int] = []
        emitter.happened.connect(received.append)
        before = sys.getrefcount(True), sys.getrefcount(False)
        for n in range(5000):
            emit(emitter.happened, n)
            emit(emitter.done)
        assert len(received) == 5000
        assert (sys.getrefcount(True), sys.getrefcount(False)) == before

    def test_blocked_signals_are_safe_too(self) -> None:
        emitter = _Emitter()
        emitter.blockSignals(True)
        before = sys.getrefcount(True), sys.getrefcount(False)
        for n in range(1000):
            emit(emitter.happened, n)
        assert (sys.getrefcount(True), sys.getrefcount(False)) == before

    def test_detection_matches_what_plain_emit_does_here(self) -> None:
        emitter = _Emitter()
        before = sys.getrefcount(True) + sys.getrefcount(False)
        for n in range(20):
            emitter.happened.emit(n)
        lost = before - (sys.getrefcount(True) + sys.getrefcount(False))
        for _ in range(max(0, lost)):  # give back what the plain emits took
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
        plain_emit_drops_one_each = lost == 20
        assert plain_emit_drops_one_each == signals.EMIT_DROPS_REFERENCE
