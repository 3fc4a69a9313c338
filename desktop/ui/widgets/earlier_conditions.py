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
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.services.patient_conditions import MIN_EXCLUSION_REASON, EarlierCondition, EarlierConditions
from desktop.services.prescribing import Alert, PadCheck
from desktop.ui.signals import emit
from desktop.ui.style import MUTED_COLOR, WARNING_COLOR
from desktop.ui.widgets.reason_dialog import ReasonDialog, ask_reason

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


class ExcludeConditionDialog(ReasonDialog):
    """Asks why an earlier condition does not apply to this prescription; OK only once a reason is typed.

    Keyboard: the reason box has focus; Ctrl+Enter excludes, Esc cancels.
    """

    def __init__(self, condition: EarlierCondition, parent: QWidget | None = None) -> None:
        super().__init__(
            title=f"Exclude {condition.label}",
            blocks=[
                f"<b>{html.escape(condition.label)}</b> ({html.escape(condition.coded)}) was diagnosed at a visit "
                f"on {condition.seen_on:%d %b %Y}. Leave it out of this prescription's checks?"
            ],
            prompt="Why does it no longer apply (e.g. resolved, delivered, wrong diagnosis)? At least "
            f"{MIN_EXCLUSION_REASON} letters; recorded with your name and the time.",
            reason_name="Reason for excluding the condition",
            ok_text="Exclude",
            min_letters=MIN_EXCLUSION_REASON,
            width=520,
            parent=parent,
        )


def ask_exclusion_reason(parent: QWidget, condition: EarlierCondition) -> str | None:
    """The typed reason, or None when cancelled."""
    return ask_reason(ExcludeConditionDialog(condition, parent))
