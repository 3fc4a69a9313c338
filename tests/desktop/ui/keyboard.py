"""Keyboard-only driving of real widgets: keys go to whatever has focus, as when a person types."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot


def focused(qtbot: QtBot, expected: QWidget | None = None) -> QWidget:
    """The widget with keyboard focus (waits until it is `expected`, when given)."""
    if expected is not None:
        qtbot.waitUntil(lambda: QApplication.focusWidget() is expected)
    widget = QApplication.focusWidget()
    assert widget is not None, "nothing has keyboard focus"
    return widget


def type_text(qtbot: QtBot, text: str, expected: QWidget | None = None) -> None:
    """Type `text` into the focused widget, in any script.

    QTest.keyClicks only knows Latin-1 (it aborts the process on Devanagari), so other characters are sent
    as key events that carry the character as their text, which is what an Indic keyboard layout (Inscript,
    phonetic) delivers: one key event per code point, vowel signs included.
    """
    widget = focused(qtbot, expected)
    for char in text:
        if char.isascii():
            QTest.keyClicks(widget, char)
            continue
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(widget, QKeyEvent(kind, 0, Qt.KeyboardModifier.NoModifier, char))


def press(qtbot: QtBot, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """Press one key on the focused widget (shortcuts resolve as they would for a person)."""
    QTest.keyClick(focused(qtbot), key, modifier)


def activate(qtbot: QtBot, window: QWidget) -> None:
    """Show `window`, wait until it is on screen and active, so focus and shortcuts work."""
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
