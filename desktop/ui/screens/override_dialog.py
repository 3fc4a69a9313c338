"""`OverrideDialog`: override one major interaction alert with a typed reason (stored and audited by the service)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QWidget

from desktop.services.prescribing import MIN_OVERRIDE_REASON, Alert
from desktop.ui.style import WARNING_COLOR
from desktop.ui.widgets.reason_dialog import ReasonDialog, ask_reason


class OverrideDialog(ReasonDialog):
    """Shows the rule, what may happen, the advice and the source; OK only once a reason is typed.

    Keyboard: the reason box has focus; Ctrl+Enter (or Tab to OK) overrides, Esc cancels.

    Args:
        alert: the major alert.
        parent: Qt parent.
    """

    def __init__(self, alert: Alert, parent: QWidget | None = None) -> None:
        super().__init__(
            title=f"Override {alert.rule_id}",
            blocks=[
                f"<b style='color:{WARNING_COLOR}'>{html.escape(alert.rule_id)} — major interaction: "
                f"{html.escape(alert.title)}</b>",
                f"<p><b>Effect:</b> {html.escape(alert.effect)}</p><p><b>Why:</b> {html.escape(alert.mechanism)}</p>"
                f"<p><b>Advice:</b> {html.escape(alert.advice)}</p><p><i>Source: {html.escape(alert.source)}"
                f" (evidence {html.escape(alert.evidence_level)})</i></p>",
            ],
            prompt=f"Why do you prescribe this combination? (at least {MIN_OVERRIDE_REASON} letters; recorded with "
            "your name and the time)",
            reason_name="Override reason",
            ok_text="Override",
            min_letters=MIN_OVERRIDE_REASON,
            width=560,
            parent=parent,
        )
        self.alert = alert


def ask_override_reason(parent: QWidget | None, alert: Alert) -> str | None:
    """Show the dialog modally; the typed reason, or None when cancelled."""
    return ask_reason(OverrideDialog(alert, parent))
