"""The Rx pad's "From earlier visits" list: conditions checked although this visit's note does not name them.

Each row names the condition, its code and the visit it comes from, and which alerts it fires now, so the
doctor sees why a warning appeared. Ctrl+Shift+X (anywhere in the pad) excludes the selected condition from
this prescription's checks, after asking why (`ExcludeConditionDialog`; the service records it with the
doctor's name and the time), or checks an excluded one again. Enter on a row does the same.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.services.patient_conditions import MIN_EXCLUSION_REASON, EarlierCondition, EarlierConditions
from desktop.services.prescribing import Alert, PadCheck
from desktop.ui.signals import emit
from desktop.ui.style import MUTED_COLOR, WARNING_COLOR

TITLE = "From earlier visits (checked too) · Ctrl+Shift+X: exclude / include the selected one"


class EarlierConditionsPanel(QWidget):
    """Lists the earlier conditions and the rules each fires; asks to exclude or include one by keyboard.

    Args:
        shortcut_scope: the widget whose children get Ctrl+Shift+X (the pad).
        parent: Qt parent.
    """

    toggle_requested = Signal(object)  # EarlierCondition

    def __init__(self, shortcut_scope: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._earlier = EarlierConditions()
        self._fired: dict[str, list[str]] = {}
        self._read_only = False
        self.title = QLabel(TITLE, self)
        self.title.setStyleSheet(f"color: {WARNING_COLOR}; font-weight: 600;")
        self.list = QListWidget(self)
        self.list.setAccessibleName("Conditions from earlier visits")
        self.list.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.list)
        self._shortcut = QShortcut(QKeySequence("Ctrl+Shift+X"), shortcut_scope)
        self._shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._shortcut.activated.connect(self.on_shortcut_activated)
        self.list.itemActivated.connect(self.on_list_item_activated)
        self.hide()

    @property
    def conditions(self) -> EarlierConditions:
        return self._earlier

    def show_conditions(self, earlier: EarlierConditions) -> None:
        """Show these (hidden when there are none)."""
        self._earlier = earlier
        self._redraw()

    def show_result(self, result: PadCheck) -> None:
        """Note which alerts each earlier condition takes part in now."""
        fired: dict[str, list[str]] = {}
        for alert in result.alerts:
            for key in alert.conditions:
                fired.setdefault(key, []).append(f"{alert.rule_id} ({alert.severity})")
        if fired != self._fired:
            self._fired = fired
            self._redraw()

    def origin_note(self, alert: Alert) -> str:
        """ " — Pregnancy: from an earlier visit (12 Jan 2026)" for an alert that an earlier condition fires."""
        parts = []
        for key in alert.conditions:
            item = self._earlier.by_key(key)
            if item is not None:
                parts.append(f"{item.label}: {item.origin}")
        return f" — {'; '.join(parts)}" if parts else ""

    def set_read_only(self, read_only: bool) -> None:
        self._read_only = read_only
        self._shortcut.setEnabled(not read_only)

    def selected(self) -> EarlierCondition | None:
        """The selected condition, else the first one."""
        row = self.list.currentRow()
        items = self._earlier.items
        if not items:
            return None
        return items[row] if 0 <= row < len(items) else items[0]

    def _redraw(self) -> None:
        current = self.list.currentRow()
        self.list.clear()
        for item in self._earlier.items:
            role = "primary" if item.primary else "secondary"
            head = f"{item.label} ({item.coded}) — {role} diagnosis {item.seen_on:%d %b %Y}"
            if item.excluded_reason is not None:
                text = f"✗ {item.label} ({item.coded}), {item.seen_on:%d %b %Y} — EXCLUDED: “{item.excluded_reason}”"
                color = MUTED_COLOR
            else:
                fired = self._fired.get(item.key, [])
                text = f"• {head}" + (f" — fires {', '.join(fired)}" if fired else " — no alert now")
                color = WARNING_COLOR if fired else "#222222"
            row = QListWidgetItem(text)
            row.setForeground(QColor(color))
            row.setToolTip(f"Checked as {item.key}; {item.origin}. Ctrl+Shift+X excludes or includes it.")
            self.list.addItem(row)
        count = self.list.count()
        if count:
            self.list.setCurrentRow(min(max(current, 0), count - 1))
            # As tall as its first three rows (a long reason wraps), so the lines below keep the room.
            rows = sum(max(self.list.sizeHintForRow(i), 18) + 2 for i in range(min(count, 3)))
            self.list.setFixedHeight(rows + 2 * self.list.frameWidth() + 4)
        self.setVisible(bool(count))

    @Slot()
    def on_shortcut_activated(self) -> None:
        item = self.selected()
        if item is not None and not self._read_only:
            emit(self.toggle_requested, item)

    @Slot(QListWidgetItem)
    def on_list_item_activated(self, _row: QListWidgetItem) -> None:
        self.on_shortcut_activated()


class ExcludeConditionDialog(QDialog):
    """Asks why an earlier condition does not apply to this prescription; OK only once a reason is typed.

    Keyboard: the reason box has focus; Ctrl+Enter excludes, Esc cancels.
    """

    def __init__(self, condition: EarlierCondition, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Exclude {condition.label}")
        self.setMinimumWidth(520)
        heading = QLabel(
            f"<b>{html.escape(condition.label)}</b> ({html.escape(condition.coded)}) was diagnosed at a visit on "
            f"{condition.seen_on:%d %b %Y}. Leave it out of this prescription's checks?",
            self,
        )
        heading.setWordWrap(True)
        prompt = QLabel(
            f"Why does it no longer apply (e.g. resolved, delivered, wrong diagnosis)? At least {MIN_EXCLUSION_REASON}"
            " letters; recorded with your name and the time.",
            self,
        )
        prompt.setWordWrap(True)
        self.reason = QPlainTextEdit(self)
        self.reason.setAccessibleName("Reason for excluding the condition")
        self.reason.setTabChangesFocus(True)
        self.reason.setFixedHeight(64)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Exclude (Ctrl+Enter)")
        self.ok_button.setShortcut("Ctrl+Return")
        self.ok_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(prompt)
        layout.addWidget(self.reason)
        layout.addWidget(self.buttons)
        self.reason.textChanged.connect(self.on_reason_text_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason.setFocus()

    @Slot()
    def on_reason_text_changed(self) -> None:
        self.ok_button.setEnabled(len(self.reason.toPlainText().replace(" ", "").strip()) >= MIN_EXCLUSION_REASON)

    def reason_text(self) -> str:
        return " ".join(self.reason.toPlainText().split())


def ask_exclusion_reason(parent: QWidget, condition: EarlierCondition) -> str | None:
    """The typed reason, or None when cancelled."""
    dialog = ExcludeConditionDialog(condition, parent)
    return dialog.reason_text() if dialog.exec() == QDialog.DialogCode.Accepted else None
