"""`OverrideDialog`: override one major interaction alert with a typed reason (stored and audited by the service)."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from desktop.services.prescribing import MIN_OVERRIDE_REASON, Alert
from desktop.ui.style import WARNING_COLOR


class OverrideDialog(QDialog):
    """Shows the rule, what may happen, the advice and the source; OK only once a reason is typed.

    Keyboard: the reason box has focus; Ctrl+Enter (or Tab to OK) overrides, Esc cancels.

    Args:
        alert: the major alert.
        parent: Qt parent.
    """

    def __init__(self, alert: Alert, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.alert = alert
        self.setWindowTitle(f"Override {alert.rule_id}")
        self.setMinimumWidth(560)
        heading = QLabel(
            f"<b style='color:{WARNING_COLOR}'>{html.escape(alert.rule_id)} — major interaction: "
            f"{html.escape(alert.title)}</b>",
            self,
        )
        heading.setWordWrap(True)
        body = QLabel(
            f"<p><b>Effect:</b> {html.escape(alert.effect)}</p><p><b>Why:</b> {html.escape(alert.mechanism)}</p>"
            f"<p><b>Advice:</b> {html.escape(alert.advice)}</p><p><i>Source: {html.escape(alert.source)}"
            f" (evidence {html.escape(alert.evidence_level)})</i></p>",
            self,
        )
        body.setWordWrap(True)
        body.setTextFormat(Qt.TextFormat.RichText)
        prompt = QLabel(f"Why do you prescribe this combination? (at least {MIN_OVERRIDE_REASON} letters; recorded "
                        "with your name and the time)", self)  # fmt: skip
        prompt.setWordWrap(True)
        self.reason = QPlainTextEdit(self)
        self.reason.setAccessibleName("Override reason")
        self.reason.setTabChangesFocus(True)
        self.reason.setFixedHeight(70)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Override (Ctrl+Enter)")
        self.ok_button.setShortcut("Ctrl+Return")
        self.ok_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(body)
        layout.addWidget(prompt)
        layout.addWidget(self.reason)
        layout.addWidget(self.buttons)
        self.reason.textChanged.connect(self.on_reason_text_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason.setFocus(Qt.FocusReason.OtherFocusReason)

    def reason_text(self) -> str:
        return " ".join(self.reason.toPlainText().split())

    @Slot()
    def on_reason_text_changed(self) -> None:
        self.ok_button.setEnabled(len(self.reason_text().replace(" ", "")) >= MIN_OVERRIDE_REASON)

    def accept(self) -> None:
        if self.ok_button.isEnabled():
            super().accept()


def ask_override_reason(parent: QWidget | None, alert: Alert) -> str | None:
    """Show the dialog modally; the typed reason, or None when cancelled."""
    dialog = OverrideDialog(alert, parent)
    try:
        return dialog.reason_text() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()
