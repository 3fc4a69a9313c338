"""`FieldError`: the red message under one input, also given to screen readers as the input's description."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget


class FieldError(QLabel):
    """Red text under a field; hidden while there is no problem.

    Setting a message also marks the field (``invalid`` property → red frame from `desktop.ui.style`) and
    puts the message in the field's accessible description, so a screen reader reads it with the field.

    Args:
        field: the input the message is about.
        parent: Qt parent.
    """

    def __init__(self, field: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._field = field
        self.setProperty("role", "error")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setAccessibleName(f"Problem with {field.accessibleName() or 'this field'}")
        self.hide()

    @property
    def field(self) -> QWidget:
        """The input this message is about."""
        return self._field

    def show_message(self, text: str) -> None:
        """Show `text` under the field (empty text clears)."""
        if not text:
            self.clear_message()
            return
        self.setText(text)
        self.setAccessibleDescription(text)
        self._field.setAccessibleDescription(text)
        self._mark(True)
        self.show()

    def clear_message(self) -> None:
        """Hide the message and the red frame."""
        self.setText("")
        self._field.setAccessibleDescription("")
        self._mark(False)
        self.hide()

    def has_message(self) -> bool:
        """True while a message is shown."""
        return bool(self.text())

    def _mark(self, invalid: bool) -> None:
        if bool(self._field.property("invalid")) == invalid:
            return
        self._field.setProperty("invalid", invalid)
        # A dynamic property only restyles after a re-polish.
        style = self._field.style()
        style.unpolish(self._field)
        style.polish(self._field)
        self._field.update()
