"""`ReasonDialog`: a decision the doctor must justify in words (stored and audited by the service that asks).

The common part of the override of a major interaction alert (`desktop.ui.screens.override_dialog`) and the
exclusion of an earlier visit's condition from a prescription's checks
(`desktop.ui.widgets.earlier_conditions`): what is being decided, a prompt, a reason box, and an OK button
enabled only once the reason has enough letters.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget


class ReasonDialog(QDialog):
    """What is decided (rich-text blocks), the prompt, the reason box; OK only once a reason is typed.

    Keyboard: the reason box has focus; Ctrl+Enter (or Tab to OK) confirms, Esc cancels.

    Args:
        title: window title.
        blocks: rich text shown above the prompt, one label each (escape what the user or data supplied).
        prompt: the question the reason answers.
        reason_name: accessible name of the reason box.
        ok_text: the OK button's text (the shortcut is added).
        min_letters: letters (spaces not counted) the reason needs.
        width: minimum width in pixels.
        parent: Qt parent.
    """

    def __init__(
        self,
        *,
        title: str,
        blocks: list[str],
        prompt: str,
        reason_name: str,
        ok_text: str,
        min_letters: int,
        width: int = 540,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(width)
        self._min_letters = min_letters
        layout = QVBoxLayout(self)
        for text in blocks:
            label = QLabel(text, self)
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            layout.addWidget(label)
        question = QLabel(prompt, self)
        question.setWordWrap(True)
        layout.addWidget(question)
        self.reason = QPlainTextEdit(self)
        self.reason.setAccessibleName(reason_name)
        self.reason.setTabChangesFocus(True)
        self.reason.setFixedHeight(70)
        layout.addWidget(self.reason)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(f"{ok_text} (Ctrl+Enter)")
        self.ok_button.setShortcut("Ctrl+Return")
        self.ok_button.setEnabled(False)
        layout.addWidget(self.buttons)
        self.reason.textChanged.connect(self.on_reason_text_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason.setFocus(Qt.FocusReason.OtherFocusReason)

    def reason_text(self) -> str:
        """The reason with its whitespace folded to single spaces."""
        return " ".join(self.reason.toPlainText().split())

    @Slot()
    def on_reason_text_changed(self) -> None:
        self.ok_button.setEnabled(len(self.reason_text().replace(" ", "")) >= self._min_letters)

    def accept(self) -> None:
        if self.ok_button.isEnabled():
            super().accept()


def ask_reason(dialog: ReasonDialog) -> str | None:
    """Show the dialog modally; the typed reason, or None when cancelled. The dialog is disposed of after."""
    try:
        return dialog.reason_text() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()
