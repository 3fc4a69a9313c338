"""`RxPad`: one shorthand line per medicine, expanded live beside it, with the alerts of the whole prescription.

Each line is read by the shared parser and the whole pad is checked by `PrescribingService.check` 150 ms after
the last keystroke (debounced). The check runs on the GUI thread: it is the shared pure code, about 1.5 ms
for 15 lines (docs/shorthand.md; the pad's own figure is in docs/desktop_encounters.md), well under a frame,
so a worker thread would only add latency and ordering problems.

What the doctor sees:

* beside each line, the expansion: typed parts in normal text, parts filled from the formulary in grey
  italics (tooltip: "from formulary");
* when the clinic server refused the draft as synced (`PrescribingService.sync_refusal`), a red line at the
  top saying why, until the next save;
* unresolved tokens underlined red inside the line, with the reasons as the line's tooltip and under it;
* hard stops (contraindicated rules and qualification refusals) in a red box naming the rule and its source:
  the prescription cannot be saved while one is present;
* major alerts in a list: each needs an override with a typed reason (Ctrl+Shift+O on the selected one);
* moderate alerts inline under the lines involved; minor ones behind "Show minor (N)".

Keyboard: Enter adds a line below, Up/Down move between lines, Delete (or Backspace) on an empty line removes
it, Ctrl+Shift+O overrides the selected (or first) major alert, Ctrl+Shift+M shows/hides minor alerts,
Ctrl+Shift+X excludes (or includes again) the selected condition from earlier visits (`EarlierConditionsPanel`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QHelpEvent,
    QInputMethodEvent,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QTextCharFormat,
)
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from desktop.services.prescribing import Alert, LineCheck, PadCheck, PrescriberContext, PrescribingService
from desktop.ui.signals import emit
from desktop.ui.style import ERROR_COLOR, MUTED_COLOR, WARNING_COLOR
from desktop.ui.widgets.earlier_conditions import EarlierConditionsPanel

DEBOUNCE_MS = 150
DEFAULTED_TIP = "from formulary"
PLACEHOLDER = "e.g. Metf 1000 bd 30d · amlo 5 0-0-1 x 1m · triphala churna 5g hs with warm water x 30d"
_FIELD_WORDS = {"strength": "strength", "dosage_form": "form", "route": "route", "instructions": "instructions"}
_PROBLEM_CODE = re.compile(r"^rx\.[a-z_]+:\s*")


def refusal_text(refusal: Mapping[str, Any]) -> str:
    """The server's refusal of the synced draft, in words: its message without the leading problem code.

    The message is the sync answer's (``rx.contraindicated: Contraindicated: … (rule DDI-018)``); the code is
    for machines, the rest already says it in words and names the rule.
    """
    message = _PROBLEM_CODE.sub("", str(refusal.get("message") or "").strip()).rstrip(". ")
    said = message or "no reason given"
    return f"The clinic server refused this prescription: {said}. It is saved on this PC; change it and save again."


def expansion_html(line: LineCheck) -> str:
    """The expansion as rich text: defaulted parts grey italic, nothing for an empty line."""
    exp = line.expanded
    if exp is None:
        return ""
    if exp.generic_name is None:
        return f'<span style="color:{ERROR_COLOR}">No known medicine</span>'
    defaulted = set(exp.defaulted)

    def part(name: str, text: str | None) -> str:
        if not text:
            return ""
        shown = html.escape(text)
        if name in defaulted:
            return f'<i style="color:{MUTED_COLOR}">{shown}</i>'
        return shown

    head = " ".join(
        p for p in (f"<b>{html.escape(exp.generic_name)}</b>", part("strength", exp.strength),
                    part("dosage_form", exp.dosage_form), part("route", exp.route)) if p
    )  # fmt: skip
    rest = [exp.frequency and html.escape(exp.frequency)]
    if exp.duration_days:
        rest.append(f"{exp.duration_days} days")
    if exp.quantity is not None:
        packs = exp.dispense.short if exp.dispense is not None else None
        rest.append(f"qty {exp.quantity}" + (f" = <b>{html.escape(packs)}</b>" if packs else ""))
    text = head + " — " + ", ".join(r for r in rest if r)
    if exp.instructions:
        text += "<br>" + part("instructions", exp.instructions)
    return text


def defaulted_tooltip(line: LineCheck) -> str:
    exp = line.expanded
    if exp is None or exp.generic_name is None:
        return ""
    parts = [f"{_FIELD_WORDS[name]} ({getattr(exp, name)})" for name in _FIELD_WORDS if name in exp.defaulted]
    if not parts:
        return "Everything shown was typed."
    return f"Grey italic parts are {DEFAULTED_TIP} (not typed): " + ", ".join(parts)


class RxLineEdit(QLineEdit):
    """A shorthand line: keys for moving between lines, and red marks under unresolved tokens."""

    enter_pressed = Signal()
    up_pressed = Signal()
    down_pressed = Signal()
    remove_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(PLACEHOLDER)
        self.setAccessibleName("Prescription line")
        self._marks: tuple[tuple[int, int], ...] = ()
        self._reasons: tuple[str, ...] = ()

    @property
    def marks(self) -> tuple[tuple[int, int], ...]:
        """The (start, end) spans marked as unresolved."""
        return self._marks

    def reason_at(self, position: int) -> str | None:
        """Why the token at this character position is marked, or None."""
        for (start, end), reason in zip(self._marks, self._reasons, strict=True):
            if start <= position < end:
                return reason
        return None

    def set_marks(self, spans: Sequence[tuple[int, int, str]]) -> None:
        """Underline these spans (offsets into the text) in red, each with its reason; [] clears the marks."""
        kept = [(s, e, r) for s, e, r in spans if e > s]
        self._marks = tuple((s, e) for s, e, _ in kept)
        self._reasons = tuple(r for _, _, r in kept)
        fmt = QTextCharFormat()
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QColor(ERROR_COLOR))
        fmt.setForeground(QColor(ERROR_COLOR))
        fmt.setBackground(QColor("#fde8e6"))
        cursor = self.cursorPosition()
        attrs = [
            QInputMethodEvent.Attribute(QInputMethodEvent.AttributeType.TextFormat, s - cursor, e - s, fmt)
            for s, e in self._marks
        ]
        # Formats reach a QLineEdit's text layout only through an input-method event (no text is changed).
        QCoreApplication.sendEvent(self, QInputMethodEvent("", attrs))

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            reason = self.reason_at(self.cursorPositionAt(event.pos()))
            if reason is not None:  # the reason of the token under the mouse; else the line's list of reasons
                QToolTip.showText(event.globalPos(), reason, self)
                return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        if plain and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            emit(self.enter_pressed)
            return
        if plain and key == Qt.Key.Key_Up:
            emit(self.up_pressed)
            return
        if plain and key == Qt.Key.Key_Down:
            emit(self.down_pressed)
            return
        if plain and key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and not self.text() and not self.isReadOnly():
            emit(self.remove_requested)
            return
        super().keyPressEvent(event)


class RxRow(QWidget):
    """One pad line: number, the line, its expansion, and notes (unresolved reasons, refusals, moderate alerts)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.number = QLabel("1.", self)
        self.number.setFixedWidth(22)
        self.number.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.edit = RxLineEdit(self)
        self.edit.setMinimumWidth(250)
        self.expansion = QLabel("", self)
        self.expansion.setTextFormat(Qt.TextFormat.RichText)
        self.expansion.setWordWrap(True)
        self.expansion.setAccessibleName("Expansion")
        self.expansion.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.notes = QLabel("", self)
        self.notes.setTextFormat(Qt.TextFormat.RichText)
        self.notes.setWordWrap(True)
        self.notes.setAccessibleName("Problems with this line")
        self.notes.hide()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        grid.addWidget(self.number, 0, 0)
        grid.addWidget(self.edit, 0, 1)
        grid.addWidget(self.expansion, 0, 2, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.notes, 1, 1, 1, 2)
        grid.setColumnStretch(1, 5)
        grid.setColumnStretch(2, 6)

    def show_check(self, line: LineCheck | None, moderate: Sequence[Alert]) -> None:
        if line is None or line.expanded is None:
            self.expansion.setText("")
            self.expansion.setToolTip("")
            self.edit.setToolTip("")
            self.edit.set_marks([])
            self.notes.hide()
            return
        exp = line.expanded
        self.expansion.setText(expansion_html(line))
        tip = defaulted_tooltip(line)
        if exp.dispense is not None:
            tip += f"\nDispense: {exp.dispense.note}"
        self.expansion.setToolTip(tip)
        self.edit.set_marks([(u.start, u.end, u.reason) for u in exp.unresolved])
        reasons = [f"'{u.token}': {u.reason}" if u.token else u.reason for u in exp.unresolved]
        self.edit.setToolTip("\n".join(reasons))
        notes = [f'<span style="color:{ERROR_COLOR}">✗ {html.escape(r)}</span>' for r in reasons]
        if line.refused and line.verdict is not None:
            notes.append(
                f'<span style="color:{ERROR_COLOR}"><b>Not allowed ({html.escape(line.verdict.rule_id)})</b></span>'
            )
        elif line.verdict is not None and line.verdict.advisory:
            notes.append(
                f'<span style="color:{WARNING_COLOR}">Note ({html.escape(line.verdict.rule_id)}): '
                f"{html.escape(line.verdict.reason)}</span>"
            )
        for alert in moderate:
            notes.append(
                f'<span style="color:{WARNING_COLOR}">⚠ {html.escape(alert.rule_id)} moderate: '
                f"{html.escape(alert.title)} — {html.escape(alert.effect)}</span>"
            )
        self.notes.setText("<br>".join(notes))
        self.notes.setVisible(bool(notes))


def _box(color: str, background: str) -> str:
    return f"QLabel {{ color: {color}; background: {background}; border: 1px solid {color}; padding: 6px; }}"


class RxPad(QWidget):
    """The prescription pad.

    Args:
        prescribing: the prescribing service (its `check` is called on the GUI thread).
        parent: Qt parent.
    """

    lines_changed = Signal()
    checked = Signal(object)  # PadCheck
    override_requested = Signal(object)  # Alert

    def __init__(self, prescribing: PrescribingService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._prescribing = prescribing
        self._prescriber: PrescriberContext | None = None
        self._conditions: list[str] = []
        self._overrides: dict[str, str] = {}
        self._result: PadCheck | None = None
        self._read_only = False
        self._tab_before: QWidget | None = None
        self._tab_after: QWidget | None = None
        self.rows: list[RxRow] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)

        title = QLabel("Prescription (℞)", self)
        title.setStyleSheet("font-weight: 600;")
        hint = QLabel("Enter: new line · ↑/↓: move · Delete on an empty line: remove · Ctrl+Shift+O: override", self)
        hint.setProperty("role", "hint")
        # The server's refusal of the synced draft: plain text, not focusable (the Tab order stays as it is).
        self.sync_refusal = QLabel("", self)
        self.sync_refusal.setTextFormat(Qt.TextFormat.PlainText)
        self.sync_refusal.setWordWrap(True)
        self.sync_refusal.setStyleSheet(_box(ERROR_COLOR, "#fdecea") + " QLabel { font-weight: 600; }")
        self.sync_refusal.setAccessibleName("Refused by the clinic server")
        self.sync_refusal.hide()
        self.earlier = EarlierConditionsPanel(self, self)  # conditions from earlier visits (Ctrl+Shift+X)
        self._rows_box = QWidget(self)
        self._rows_layout = QVBoxLayout(self._rows_box)
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.setSpacing(2)
        self._rows_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._rows_box)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        self.hard_stops = QLabel("", self)
        self.hard_stops.setTextFormat(Qt.TextFormat.RichText)
        self.hard_stops.setWordWrap(True)
        self.hard_stops.setStyleSheet(_box(ERROR_COLOR, "#fdecea"))
        self.hard_stops.setAccessibleName("Hard stops")
        self.hard_stops.hide()
        self.majors_title = QLabel("Major alerts: override each with a reason (Ctrl+Shift+O)", self)
        self.majors_title.setStyleSheet(f"color: {WARNING_COLOR}; font-weight: 600;")
        self.majors = QListWidget(self)
        self.majors.setAccessibleName("Major alerts")
        self.majors.setWordWrap(True)
        self.majors_title.hide()
        self.majors.hide()
        self.minor_toggle = QPushButton("Show minor (0)", self)
        self.minor_toggle.setCheckable(True)
        self.minor_toggle.setAutoDefault(False)
        self.minor_toggle.setAccessibleName("Show minor alerts")
        self.minors = QLabel("", self)
        self.minors.setTextFormat(Qt.TextFormat.RichText)
        self.minors.setWordWrap(True)
        self.minors.setProperty("role", "hint")
        self.minors.hide()
        self.kb_note = QLabel("", self)
        self.kb_note.setProperty("role", "hint")
        self.kb_note.setWordWrap(True)

        bottom = QHBoxLayout()
        bottom.addWidget(self.kb_note, 1)
        bottom.addWidget(self.minor_toggle, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addWidget(self.sync_refusal)
        layout.addWidget(self.earlier)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.hard_stops)
        layout.addWidget(self.majors_title)
        layout.addWidget(self.majors)
        layout.addWidget(self.minors)
        layout.addLayout(bottom)

        self._override_shortcut = QShortcut(QKeySequence("Ctrl+Shift+O"), self)
        self._override_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._minor_shortcut = QShortcut(QKeySequence("Ctrl+Shift+M"), self)
        self._minor_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._timer.timeout.connect(self.refresh_now)
        self.minor_toggle.toggled.connect(self.on_minor_toggle_toggled)
        self._override_shortcut.activated.connect(self.on_override_shortcut_activated)
        self._minor_shortcut.activated.connect(self.minor_toggle.toggle)
        self.majors.itemActivated.connect(self.on_majors_item_activated)
        self._add_row(0)

    # -- state --------------------------------------------------------------------------------------------

    @property
    def result(self) -> PadCheck | None:
        """The last check (None before the first)."""
        return self._result

    def lines(self) -> list[str]:
        """The lines as typed (blank ones included)."""
        return [row.edit.text() for row in self.rows]

    def set_context(
        self, prescriber: PrescriberContext, conditions: Sequence[str], overrides: Mapping[str, str]
    ) -> None:
        """Who prescribes, the patient's conditions and the overrides already recorded; checks again now."""
        self._prescriber = prescriber
        self._conditions = list(conditions)
        self._overrides = dict(overrides)
        self.refresh_now()

    def set_conditions(self, conditions: Sequence[str]) -> None:
        if list(conditions) != self._conditions:
            self._conditions = list(conditions)
            self.refresh_now()

    def add_override(self, key: str, reason: str) -> None:
        self._overrides[key] = reason
        self.refresh_now()

    def set_lines(self, lines: Sequence[str]) -> None:
        """Replace every line (at least one, empty, row stays)."""
        for row in self.rows:
            self._rows_layout.removeWidget(row)
            row.hide()  # at once: a deferred delete would leave it painted under the new rows until then
            row.deleteLater()
        self.rows = []
        for index, text in enumerate(lines or [""]):
            self._add_row(index).edit.setText(text)
        self.refresh_now()

    def set_sync_refusal(self, refusal: Mapping[str, Any] | None) -> None:
        """Show the server's refusal of the synced draft (``{reason, message, hlc}``), or hide it (None)."""
        text = refusal_text(refusal) if refusal else ""
        self.sync_refusal.setText(text)
        self.sync_refusal.setToolTip(text)
        self.sync_refusal.setAccessibleDescription(text)
        self.sync_refusal.setVisible(bool(text))

    def set_read_only(self, read_only: bool) -> None:
        self._read_only = read_only
        for row in self.rows:
            row.edit.setReadOnly(read_only)
        self._override_shortcut.setEnabled(not read_only)
        self.earlier.set_read_only(read_only)

    def focus_line(self, index: int) -> None:
        if 0 <= index < len(self.rows):
            self.rows[index].edit.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- rows ---------------------------------------------------------------------------------------------

    def _add_row(self, index: int) -> RxRow:
        row = RxRow(self._rows_box)
        row.edit.setReadOnly(self._read_only)
        self.rows.insert(index, row)
        self._rows_layout.insertWidget(index, row)
        row.edit.textEdited.connect(self.on_row_text_edited)
        row.edit.enter_pressed.connect(lambda r=row: self._on_enter(r))
        row.edit.up_pressed.connect(lambda r=row: self._move(r, -1))
        row.edit.down_pressed.connect(lambda r=row: self._move(r, 1))
        row.edit.remove_requested.connect(lambda r=row: self._remove(r))
        self._renumber()
        return row

    def set_tab_neighbours(self, before: QWidget, after: QWidget) -> None:
        """Tab goes before → the lines → the alerts → after, however the lines change."""
        self._tab_before, self._tab_after = before, after
        self._renumber()

    def _renumber(self) -> None:
        previous: QWidget | None = self._tab_before
        for number, row in enumerate(self.rows, start=1):
            row.number.setText(f"{number}.")
            row.edit.setAccessibleName(f"Prescription line {number}")
            if previous is not None:
                QWidget.setTabOrder(previous, row.edit)
            previous = row.edit
        if previous is not None:
            QWidget.setTabOrder(previous, self.earlier.list)
            QWidget.setTabOrder(self.earlier.list, self.majors)
            QWidget.setTabOrder(self.majors, self.minor_toggle)
            if self._tab_after is not None:
                QWidget.setTabOrder(self.minor_toggle, self._tab_after)

    def _on_enter(self, row: RxRow) -> None:
        if self._read_only:
            return
        index = self.rows.index(row)
        if not row.edit.text().strip():
            return  # an empty line stays the last new one
        if index + 1 < len(self.rows) and not self.rows[index + 1].edit.text().strip():
            self.focus_line(index + 1)
            return
        self._add_row(index + 1)
        self.focus_line(index + 1)
        self.refresh_now()

    def _move(self, row: RxRow, step: int) -> None:
        self.focus_line(self.rows.index(row) + step)

    def _remove(self, row: RxRow) -> None:
        if len(self.rows) == 1:
            return
        index = self.rows.index(row)
        self.rows.pop(index)
        self._rows_layout.removeWidget(row)
        row.hide()
        row.deleteLater()
        self._renumber()
        self.focus_line(max(0, index - 1))
        self.refresh_now()
        emit(self.lines_changed)

    @Slot()
    def on_row_text_edited(self) -> None:
        sender = self.sender()
        if isinstance(sender, RxLineEdit):
            sender.set_marks([])  # stale marks would point at the wrong characters until the next check
        self._timer.start()
        emit(self.lines_changed)

    # -- checking -----------------------------------------------------------------------------------------

    @Slot()
    def refresh_now(self) -> None:
        """Check every line now (the debounce timer calls this too)."""
        self._timer.stop()
        if self._prescriber is None:
            return
        result = self._prescribing.check(self.lines(), self._conditions, self._prescriber, self._overrides)
        self._result = result
        for row, line in zip(self.rows, result.lines, strict=True):
            moderate = [a for a in result.by_tier("inline") if line.index in a.lines]
            row.show_check(line, moderate)
        self.earlier.show_result(result)
        self._show_alerts(result)
        emit(self.checked, result)

    def _show_alerts(self, result: PadCheck) -> None:
        stops = []
        for line in result.refusals:
            assert line.verdict is not None and line.expanded is not None
            stops.append(
                f"<b>HARD STOP — line {line.index + 1}, {html.escape(line.expanded.generic_name or '')}: not "
                f"allowed for you ({html.escape(line.verdict.rule_id)})</b><br>{html.escape(line.verdict.reason)}"
                f"<br><i>Source: {html.escape(line.verdict.source)}</i>"
            )
        for alert in result.by_tier("hard_stop"):
            stops.append(
                f"<b>HARD STOP — {html.escape(alert.rule_id)} contraindicated: {html.escape(alert.title)}"
                f"{html.escape(self.earlier.origin_note(alert))}</b><br>"
                f"{html.escape(alert.effect)} {html.escape(alert.advice)}<br><i>Source: {html.escape(alert.source)}</i>"
            )
        self.hard_stops.setText("<br><br>".join(stops))
        self.hard_stops.setVisible(bool(stops))
        current = self.majors.currentRow()
        self.majors.clear()
        for alert in result.by_tier("override"):
            if alert.overridden_reason is None:
                text = (
                    f"⚠ {alert.rule_id} major: {alert.title}{self.earlier.origin_note(alert)} — {alert.effect}"
                    "  [needs override: Ctrl+Shift+O]"
                )
                color = WARNING_COLOR
            else:
                text = f"✓ {alert.rule_id} major: {alert.title} — overridden: “{alert.overridden_reason}”"
                color = MUTED_COLOR
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, alert.key)
            item.setForeground(QColor(color))
            item.setToolTip(f"{alert.effect}\n{alert.mechanism}\nAdvice: {alert.advice}\nSource: {alert.source}")
            self.majors.addItem(item)
        has_majors = self.majors.count() > 0
        # As tall as its items (up to four), so the lines above keep the room.
        row_height = max(self.majors.sizeHintForRow(0), 18) if has_majors else 18
        self.majors.setFixedHeight(min(self.majors.count(), 4) * (row_height + 2) + 12)
        self.majors_title.setVisible(has_majors)
        self.majors.setVisible(has_majors)
        if has_majors:
            self.majors.setCurrentRow(min(max(current, 0), self.majors.count() - 1))
        minors = result.by_tier("minor")
        self._label_minor_toggle(len(minors))
        self.minors.setText(
            "<br>".join(
                f"{html.escape(a.rule_id)} minor: {html.escape(a.title)} — {html.escape(a.effect)}" for a in minors
            )
        )
        self.minors.setVisible(self.minor_toggle.isChecked() and bool(minors))
        notes = [f"Knowledge base {result.kb_version} ({result.kb_status}, not yet signed off by a pharmacist)"
                 if result.kb_status == "draft" else f"Knowledge base {result.kb_version}"]  # fmt: skip
        notes += [f"Condition not checked: '{u.name}' ({u.reason})" for u in result.unknown_conditions]
        self.kb_note.setText(" · ".join(notes))

    def alert_for_key(self, key: str) -> Alert | None:
        if self._result is None:
            return None
        return next((a for a in self._result.alerts if a.key == key), None)

    def selected_major(self) -> Alert | None:
        """The major alert selected in the list, else the first one still needing an override."""
        if self._result is None:
            return None
        item = self.majors.currentItem()
        if item is not None:
            chosen = self.alert_for_key(str(item.data(Qt.ItemDataRole.UserRole)))
            if chosen is not None and chosen.blocks:
                return chosen
        return next((a for a in self._result.by_tier("override") if a.blocks), None)

    @Slot()
    def on_override_shortcut_activated(self) -> None:
        alert = self.selected_major()
        if alert is not None and not self._read_only:
            emit(self.override_requested, alert)

    @Slot(QListWidgetItem)
    def on_majors_item_activated(self, item: QListWidgetItem) -> None:
        alert = self.alert_for_key(str(item.data(Qt.ItemDataRole.UserRole)))
        if alert is not None and alert.blocks and not self._read_only:
            emit(self.override_requested, alert)

    @Slot(bool)
    def on_minor_toggle_toggled(self, shown: bool) -> None:
        self.minors.setVisible(shown and bool(self.minors.text()))
        self._label_minor_toggle(len(self._result.by_tier("minor")) if self._result else 0)

    def _label_minor_toggle(self, count: int) -> None:
        self.minor_toggle.setText(f"{'Hide' if self.minor_toggle.isChecked() else 'Show'} minor ({count})")
