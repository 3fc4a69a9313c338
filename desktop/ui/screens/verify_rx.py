"""`VerifyPrescriptionDialog`: check a printed prescription's QR offline — from an image, a PDF or pasted text.

The pharmacist (or the doctor, for a patient's old printout) opens a scan/photo/PDF (Ctrl+O) or pastes the QR
text (Ctrl+V into the box, Enter). Reading the QR and checking the signature, the certificate chain and the
revocation lists is done by `desktop.rx.verify` (the same code as `integmed rx verify`) on the runner's pool,
never on the GUI thread; an indeterminate progress bar shows meanwhile. The answer is a big coloured VALID
(green), VALID — SANDBOX TEST (amber) or INVALID (red) with the reason, and below it the readable prescription
the signature covers. On a clinic PC the app also passes `known_status` (`desktop.rx.verify.with_local_status`
over this PC's store): a prescription its doctor cancelled or superseded is INVALID with the date and reason,
a dispensed one carries "already dispensed … do not dispense it again".

Keyboard: Ctrl+O opens a file, Enter verifies the pasted text, Esc closes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.rx import revocations as revocation_cache
from desktop.rx import verify as rx_verify
from desktop.ui.runner import Runner
from desktop.ui.signals import emit
from desktop.ui.style import ERROR_COLOR, MUTED_COLOR, OK_COLOR, WARNING_COLOR
from shared.signing.errors import Reason
from shared.signing.revocation import RevocationList
from shared.signing.rx import Verification
from shared.signing.trust import TrustStore, default_trust

FILE_FILTER = "Prescriptions (*.pdf *.png *.jpg *.jpeg);;All files (*)"
TrustLoader = Callable[[], tuple[TrustStore, list[RevocationList]]]
KnownStatus = Callable[[Verification], tuple[Verification, str | None]]
"""Folds what this PC knows of the prescription (cancelled, dispensed ...) into a verification; a problem text
when its records could not be read."""
ChooseFile = Callable[[QWidget], str | None]


@dataclass(frozen=True)
class Checked:
    """What one check found: the verification, where the QR text came from, and why this PC's records could
    not be consulted (if so)."""

    result: Verification
    source: str
    problem: str | None = None


def check(argument: str, load_trust: TrustLoader, known_status: KnownStatus | None = None) -> Checked:
    """Read the QR text from `argument` (a file path or the text itself) and verify it. Runs off the GUI thread.

    Raises:
        desktop.rx.verify.UnreadableInput: no prescription QR could be read from the file.
    """
    text, source = rx_verify.read_payload(argument)
    trust, revocations = load_trust()
    result = rx_verify.verify(text, trust, revocations)
    if known_status is None:
        return Checked(result, source)
    result, problem = known_status(result)
    return Checked(result, source, problem)


def data_dir_trust(data_dir: Path) -> TrustLoader:
    """The trust the app uses: the shipped roots and the revocation lists installed in `data_dir`."""

    def load() -> tuple[TrustStore, list[RevocationList]]:
        trust = default_trust()
        return trust, list(revocation_cache.load_cached(data_dir, trust).lists)

    return load


def _choose_file(parent: QWidget) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open a prescription image or PDF", "", FILE_FILTER)
    return path or None


def verdict(result: Verification) -> tuple[str, str]:
    """The banner word and its colour."""
    if not result.valid:
        if result.reason in (Reason.CANCELLED, Reason.SUPERSEDED):
            return f"INVALID \u2014 {result.reason.value.upper()}, do not dispense", ERROR_COLOR
        return "INVALID", ERROR_COLOR
    if result.standing is not None and result.standing.status == "dispensed":
        return "VALID \u2014 ALREADY DISPENSED, do not dispense again", WARNING_COLOR
    if result.sandbox:
        return "VALID \u2014 SANDBOX TEST, not for dispensing", WARNING_COLOR
    return "VALID", OK_COLOR


def prescription_html(checked: Checked) -> str:
    """The prescription the signature covers, as simple HTML (empty paragraph when nothing could be read)."""
    r = checked.result
    parts = [f'<p style="color:{MUTED_COLOR}">Read from {escape(checked.source)}</p>']
    if r.doctor is not None:
        d = r.doctor
        reg = " ".join(x for x in (d.registration_council, d.registration_number) if x)
        parts.append(
            f"<p><b>Doctor:</b> {escape(d.name or '(no name)')}"
            + (f", {escape(d.qualification)}" if d.qualification else "")
            + (f" &middot; Reg. {escape(reg)}" if reg else "")
            + (f" &middot; HPR {escape(d.hpr_id)}" if d.hpr_id else "")
            + "</p>"
        )
    c = r.content
    if c is None:
        return "".join(parts)
    p = c.patient
    age = f", {p.age_years} y" if p.age_years is not None else ""
    abha = f" &middot; ABHA {escape(p.abha_number)}" if p.abha_number else ""
    parts.append(f"<p><b>Patient:</b> {escape(p.name)}{age}, {escape(p.sex)}{abha}</p>")
    parts.append(
        f"<p><b>Clinic:</b> {escape(c.clinic.name)} &middot; <b>Signed</b> {c.issued_at:%d %b %Y %H:%M} UTC"
        f" &middot; <b>Valid until</b> {c.expires_at:%d %b %Y}</p>"
    )
    if c.diagnosis:
        text = "; ".join(" ".join(x for x in (d.text, f"({d.code})" if d.code else None) if x) for d in c.diagnosis)
        parts.append(f"<p><b>Diagnosis:</b> {escape(text)}</p>")
    rows = []
    for n, m in enumerate(c.medicines, 1):
        what = " ".join(x for x in (m.generic_name.upper(), m.strength, m.dosage_form) if x)
        how = ", ".join(x for x in (m.dose, m.frequency, f"for {m.duration_days} days", m.instructions) if x)
        qty = str(m.quantity) if m.quantity else "\u2014"
        rows.append(f"<tr><td>{n}</td><td><b>{escape(what)}</b><br>{escape(how)}</td><td>{qty}</td></tr>")
    for n, a in enumerate(c.ayush, 1):
        how = ", ".join(x for x in (a.dose, a.frequency, f"for {a.duration_days} days", a.instructions) if x)
        rows.append(f"<tr><td>A{n}</td><td><b>{escape(a.name)}</b> [AYUSH]<br>{escape(how)}</td><td></td></tr>")
    parts.append(
        '<table cellspacing="0" cellpadding="4" width="100%"><tr><th align="left" width="6%">#</th>'
        '<th align="left" width="82%">Medicine</th><th align="left" width="12%">Qty</th></tr>'
        + "".join(rows)
        + "</table>"
    )
    if c.followup:
        parts.append(f"<p><b>Follow-up:</b> {escape(c.followup)}</p>")
    parts.extend(f'<p style="color:{WARNING_COLOR}">Note: {escape(note)}</p>' for note in r.notes)
    if r.standing is not None:
        s = r.standing
        colour = ERROR_COLOR if s.status in ("cancelled", "superseded") else WARNING_COLOR
        parts.append(
            f'<p style="color:{colour}"><b>{escape(s.status.upper())}</b> {s.at:%d %b %Y %H:%M} UTC: '
            f"{escape(s.reason)} (event {s.seq}, recorded on {escape(s.known_from)})</p>"
        )
    if checked.problem:
        parts.append(f'<p style="color:{WARNING_COLOR}">{escape(checked.problem)}</p>')
    return "".join(parts)


class VerifyPrescriptionDialog(QDialog):
    """Open a file or paste QR text; see VALID/INVALID with the reason and the prescription.

    Args:
        runner: decoding and verification run through `run_query` (pool thread).
        load_trust: returns the trust store and the installed revocation lists (called on the worker).
        known_status: folds this PC's knowledge of the prescription into the answer (called on the worker).
        choose_file: asks for a file (default: QFileDialog); tests pass their own.
        parent: Qt parent.
    """

    checked = Signal(object)  # Checked
    failed = Signal(str)

    def __init__(
        self,
        runner: Runner,
        load_trust: TrustLoader,
        *,
        known_status: KnownStatus | None = None,
        choose_file: ChooseFile = _choose_file,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Verify a prescription")
        self._runner = runner
        self._load_trust = load_trust
        self._known_status = known_status
        self._choose_file = choose_file
        self._busy = False
        title = QLabel("Verify a prescription", self)
        title.setProperty("role", "heading")
        hint = QLabel(
            "Open a scan, photo or PDF of the printed prescription (Ctrl+O), or paste the text of its QR code "
            "and press Enter. Nothing is sent over the network.",
            self,
        )
        hint.setProperty("role", "hint")
        hint.setWordWrap(True)
        paste_label = QLabel("QR &text", self)
        self.text_edit = QLineEdit(self)
        self.text_edit.setPlaceholderText("IMRX1:\u2026")
        self.text_edit.setAccessibleName("QR text")
        paste_label.setBuddy(self.text_edit)
        self.verify_button = QPushButton("&Verify text (Enter)", self)
        self.verify_button.setDefault(True)
        self.open_button = QPushButton("&Open image or PDF\u2026 (Ctrl+O)", self)
        self.open_button.setAutoDefault(False)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.status = QLabel("", self)
        self.status.setProperty("role", "hint")
        self.banner = QLabel("", self)
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setAccessibleName("Verification result")
        self.banner.setVisible(False)
        self.reason = QLabel("", self)
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QTextBrowser(self)
        self.details.setAccessibleName("Prescription")
        self.close_button = QPushButton("Close (Esc)", self)
        self.close_button.setAutoDefault(False)
        row = QHBoxLayout()
        row.addWidget(self.text_edit, 1)
        row.addWidget(self.verify_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addSpacing(6)
        layout.addWidget(paste_label)
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.banner)
        layout.addWidget(self.reason)
        layout.addWidget(self.details, 1)
        self.setMinimumSize(760, 600)
        self._connect_signals()
        self.text_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def _connect_signals(self) -> None:
        self.verify_button.clicked.connect(self.on_verify_button_clicked)
        self.open_button.clicked.connect(self.on_open_button_clicked)
        self.close_button.clicked.connect(self.reject)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Ctrl+O reaches the dialog from any child that does not use it (the text box does not).
        if event.matches(QKeySequence.StandardKey.Open):
            self.on_open_button_clicked()
            return
        super().keyPressEvent(event)

    # -- actions -------------------------------------------------------------------------------------------

    @Slot()
    def on_verify_button_clicked(self) -> None:
        text = self.text_edit.text().strip()
        if not text:
            self._show_unreadable("Paste the text of the QR code first, or open a file (Ctrl+O).")
            return
        self.start(text, "Checking the pasted text\u2026")

    @Slot()
    def on_open_button_clicked(self) -> None:
        path = self._choose_file(self)
        if path:
            self.start(path, f"Reading the QR code in {Path(path).name}\u2026")

    def start(self, argument: str, status: str) -> None:
        """Check `argument` (a file path or QR text) on the runner's pool; ignored while a check runs."""
        if self._busy:
            return
        self._set_busy(True, status)
        # an earlier verdict must never stand next to a file that is still being checked
        self.banner.setVisible(False)
        self.reason.clear()
        self.details.clear()
        load_trust, known_status = self._load_trust, self._known_status
        self._runner.run_query(
            self,
            lambda: check(argument, load_trust, known_status),
            on_success=self._on_checked,
            on_failure=self._on_failed,
        )

    # -- outcome -------------------------------------------------------------------------------------------

    def _set_busy(self, busy: bool, status: str = "") -> None:
        self._busy = busy
        self.progress.setVisible(busy)
        self.status.setText(status)
        for widget in (self.verify_button, self.open_button, self.text_edit):
            widget.setEnabled(not busy)

    def _on_checked(self, checked: Checked) -> None:
        self._set_busy(False)
        word, colour = verdict(checked.result)
        self._show_banner(word, colour)
        reason = checked.result.message
        if not checked.result.valid:
            reason = f"{reason} ({checked.result.reason.value})"
        self.reason.setText(reason)
        self.details.setHtml(prescription_html(checked))
        emit(self.checked, checked)

    def _on_failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, rx_verify.UnreadableInput):
            self._show_unreadable(str(exc))
            return
        self._show_unreadable(f"The check could not be completed: {exc}")

    def _show_unreadable(self, message: str) -> None:
        self._show_banner("NO QR CODE READ", MUTED_COLOR)
        self.reason.setText(message)
        self.details.clear()
        emit(self.failed, message)

    def _show_banner(self, word: str, colour: str) -> None:
        self.banner.setText(word)
        self.banner.setStyleSheet(
            f"QLabel {{ background: {colour}; color: white; font-size: 22pt; font-weight: 700;"
            " padding: 10px; border-radius: 4px; }"
        )
        self.banner.setVisible(True)
