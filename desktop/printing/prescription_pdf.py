"""The printed prescription: `PrintablePrescription` → A5 or A4 PDF bytes (reportlab, shaped Indic text).

Layout (clinical_rx.md §5, abdm_hpr_fhir.md §9.2): a letterhead on every page (clinic; doctor with
qualification, council and registration number, HPR ID), the patient band, diagnosis, the ℞ table of modern
medicines (GENERIC NAME IN CAPITALS, strength, form, dose, frequency, duration, quantity, English directions and
under them the Hindi), AYUSH medicines in their own marked section, follow-up, then the QR (ECC M, ≥ 25 mm with
a 4-module quiet zone) beside the digital-signature block. Long prescriptions flow onto further pages; the
medicine tables split between rows and repeat their heading, so no line is ever dropped. Every page says
"Page x of y" and the Rx id.

reportlab has no font fallback, so text is split into script runs (Latin → Noto Sans, Devanagari → Noto Sans
Devanagari) and every paragraph style has shaping on (uharfbuzz), which makes conjuncts and matras correct.
The shaped glyph runs do not extract back to Unicode, so each Devanagari run is also written as invisible text
(render mode 3) at the same place, giving PDF search and text extraction the real Hindi.

Pure apart from reading the bundled fonts (desktop/resources/fonts) once per process.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any, Literal
from xml.sax.saxutils import escape

import numpy as np
import zxingcpp
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, A5
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from desktop.printing.model import AyushItem, Medicine, PrintablePrescription
from shared.rx import patient_language

Paper = Literal["A5", "A4"]
FONT_PACKAGE = "desktop.resources.fonts"
IST = timezone(timedelta(hours=5, minutes=30), "IST")
"""Printed times are Indian Standard Time (the clinic's wall clock); the QR carries UTC."""

QR_SIZE_MM = {"A5": 34.0, "A4": 36.0}
"""Smallest printed QR side including its quiet zone. clinical_rx.md §4.3: V16-M (81 modules) printed 36-40 mm;
at 34 mm with the quiet zone a V16 module is 0.38 mm, 4.5 px at 300 dpi."""
MIN_MODULE_MM = 0.35
"""Smallest module: larger symbols grow instead (V22 with its quiet zone → 39.6 mm; SMART Health Cards design
V22 for 40 mm, 0.35 mm modules, 4 dots at 300 dpi)."""

_FONTS = {
    "IM-Sans": "NotoSans-Regular.ttf",
    "IM-Sans-Bold": "NotoSans-Bold.ttf",
    "IM-Deva": "NotoSansDevanagari-Regular.ttf",
    "IM-Deva-Bold": "NotoSansDevanagari-Bold.ttf",
}
_DEVA = re.compile(r"[\u0900-\u097F\uA8E0-\uA8FF\u200C\u200D]+(?:[\s\d.,;:()/-]*[\u0900-\u097F\uA8E0-\uA8FF]+)*")

INK = colors.HexColor("#1a1a1a")
ACCENT = colors.HexColor("#0b4f71")
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#9aa7b0")
AYUSH_TINT = colors.HexColor("#eef6ea")
SANDBOX_RED = colors.HexColor("#b3261e")


class PrintError(RuntimeError):
    """The PDF could not be produced (a bundled font is missing or damaged)."""


@lru_cache(maxsize=1)
def register_fonts() -> tuple[str, ...]:
    """Register the bundled Noto fonts with reportlab once per process; returns the registered names."""
    for name, file_name in _FONTS.items():
        try:
            data = resources.files(FONT_PACKAGE).joinpath(file_name).read_bytes()
            pdfmetrics.registerFont(TTFont(name, io.BytesIO(data)))
        except Exception as exc:  # a damaged file raises TTFError, struct.error, …
            raise PrintError(f"bundled font {file_name} could not be loaded ({exc}); reinstall IntegMed") from exc
    pdfmetrics.registerFontFamily("IM-Sans", normal="IM-Sans", bold="IM-Sans-Bold")
    pdfmetrics.registerFontFamily("IM-Deva", normal="IM-Deva", bold="IM-Deva-Bold")
    return tuple(_FONTS)


def markup(text: str) -> str:
    """Escape `text` for a Paragraph and wrap each Devanagari run in the Devanagari font."""
    out: list[str] = []
    pos = 0
    for match in _DEVA.finditer(text):
        out.append(escape(text[pos : match.start()]))
        out.append(f'<font name="IM-Deva">{escape(match.group())}</font>')
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


@dataclass(frozen=True)
class _Metrics:
    page: tuple[float, float]
    margin: float
    header_h: float
    footer_h: float
    base: float


_METRICS: dict[str, _Metrics] = {
    "A5": _Metrics(A5, 9 * mm, 23 * mm, 9 * mm, 8.0),
    "A4": _Metrics(A4, 14 * mm, 28 * mm, 11 * mm, 9.0),
}


class _Styles:
    def __init__(self, base: float) -> None:
        def style(name: str, **kw: Any) -> ParagraphStyle:
            kw.setdefault("fontName", "IM-Sans")
            kw.setdefault("fontSize", base)
            kw.setdefault("leading", kw["fontSize"] * 1.3)
            kw.setdefault("textColor", INK)
            return ParagraphStyle(name, shaping=1, **kw)

        self.body = style("body")
        self.small = style("small", fontSize=base - 1.3, textColor=MUTED)
        self.label = style("label", fontSize=base - 1.5, textColor=MUTED)
        self.value = style("value", fontName="IM-Sans-Bold")
        self.section = style("section", fontName="IM-Sans-Bold", fontSize=base + 1, textColor=ACCENT, spaceBefore=5)
        self.rx_heading = style(
            "rx", fontName="IM-Sans-Bold", fontSize=base + 1, leading=base * 2.2, textColor=ACCENT, spaceBefore=3
        )
        self.drug = style("drug", fontName="IM-Sans-Bold", fontSize=base + 0.5)
        self.hindi = style("hindi", fontName="IM-Deva", fontSize=base, leading=base * 1.55, textColor=ACCENT)
        self.head = style("head", fontName="IM-Sans-Bold", fontSize=base - 1, textColor=colors.white)
        self.right = style("right", alignment=TA_RIGHT)
        self.sig = style("sig", fontSize=base - 0.5)


QUIET_ZONE = 4
"""Modules of white around the symbol (ISO/IEC 18004 asks for 4)."""


class QRCode(Flowable):  # type: ignore[misc]  # reportlab ships no type hints
    """A QR code (ECC M, 4-module quiet zone) drawn as vector squares, `size` points wide including the zone.

    The symbol is encoded by zxing-cpp (C++, about 5 ms for a version-16 symbol, with the standard mask
    selection); the pure-Python `qrcode` package took about 45 ms for the same symbol.
    """

    def __init__(self, payload: str, size: float) -> None:
        super().__init__()
        symbol = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
        dark = np.asarray(symbol.to_image(scale=1, add_quiet_zones=False)) == 0
        self.version = (dark.shape[0] - 17) // 4
        padded = np.pad(dark, QUIET_ZONE, constant_values=False)
        self.matrix: list[list[bool]] = padded.tolist()
        self.size = size
        self.width = self.height = size

    def draw(self) -> None:
        canv = self.canv
        n = len(self.matrix)
        cell = self.size / n
        canv.setFillColor(colors.white)
        canv.rect(0, 0, self.size, self.size, stroke=0, fill=1)
        canv.setFillColor(colors.black)
        path = canv.beginPath()
        for r, row in enumerate(self.matrix):
            y = self.size - (r + 1) * cell
            c = 0
            while c < n:
                if row[c]:
                    start = c
                    while c < n and row[c]:
                        c += 1
                    path.rect(start * cell, y, (c - start) * cell, cell)
                else:
                    c += 1
        canv.drawPath(path, stroke=0, fill=1)


class _NumberedCanvas(Canvas):  # type: ignore[misc]
    """Canvas that knows the page count when it saves, for "Page x of y"."""

    def __init__(self, *args: Any, rx: PrintablePrescription, metrics: _Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []
        self._rx = rx
        self._m = metrics

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            _draw_footer(self, self._rx, self._m, self._pageNumber, total)
            super().showPage()
        super().save()


def _fmt_time(value: datetime) -> str:
    return value.astimezone(IST).strftime("%d %b %Y, %H:%M IST")


def _fmt_date(value: datetime) -> str:
    return value.astimezone(IST).strftime("%d %b %Y")


def _draw_text(canv: Canvas, x: float, y: float, text: str, font: str, size: float, *, box: float) -> None:
    """One line of mixed-script text with its baseline near y, starting at x."""
    para = Paragraph(markup(text), ParagraphStyle("t", fontName=font, fontSize=size, leading=size * 1.2, shaping=1))
    _, height = para.wrap(box, 50 * mm)
    para.drawOn(canv, x, y - height + size * 1.2 - size * 0.95)


def _draw_block(
    canv: Canvas | None, x: float, top: float, lines: Sequence[tuple[str, str, float]], width: float, *, right: bool
) -> float:
    """Paragraphs stacked downwards from `top` in a column `width` wide, each wrapping if it must (never
    clipped); returns the height used. With `canv` None it only measures."""
    y = top
    for text, font, size in lines:
        style = ParagraphStyle(
            "h", fontName=font, fontSize=size, leading=size * 1.22, shaping=1, alignment=TA_RIGHT if right else 0
        )
        para = Paragraph(markup(text), style)
        _, height = para.wrap(width, 60 * mm)
        if canv is not None:
            para.drawOn(canv, x, y - height)
        y -= height + (size * 0.35 if font.endswith("Bold") else 0)
    return top - y


def _letterhead(
    rx: PrintablePrescription, b: float
) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    clinic = [(rx.clinic.name, "IM-Sans-Bold", b + 5)]
    clinic += [(t, "IM-Sans", b - 1) for t in (rx.clinic.address, rx.clinic.phone and f"Phone: {rx.clinic.phone}") if t]
    d = rx.doctor
    doctor = [(d.name, "IM-Sans-Bold", b + 2), (d.qualification, "IM-Sans", b - 1)]
    doctor.append((f"Reg. No. {d.registration_number} ({d.registration_council})", "IM-Sans", b - 1))
    if d.hpr_id:
        doctor.append((f"HPR ID: {d.hpr_id}", "IM-Sans", b - 1))
    return clinic, doctor


def _header_height(rx: PrintablePrescription, m: _Metrics) -> float:
    """The letterhead's height: the paper's default, or more when a long clinic name or address wraps."""
    half = (m.page[0] - 2 * m.margin) / 2 - 2 * mm
    clinic, doctor = _letterhead(rx, m.base)
    used = max(_draw_block(None, 0, 0, clinic, half, right=False), _draw_block(None, 0, 0, doctor, half, right=True))
    return float(max(m.header_h, used + 5 * mm))


CONTINUATION_H = 6 * mm
"""Room under the letterhead of pages 2+ for the patient line, so a loose page still names its patient."""


def _draw_header(
    canv: Canvas, rx: PrintablePrescription, m: _Metrics, header_h: float, *, continued: bool = False
) -> None:
    page_w, page_h = m.page
    left, right = m.margin, page_w - m.margin
    top = page_h - m.margin
    b = m.base
    half = (right - left) / 2 - 2 * mm
    canv.saveState()
    clinic, doctor = _letterhead(rx, b)
    _draw_block(canv, left, top, clinic, half, right=False)
    _draw_block(canv, right - half, top, doctor, half, right=True)
    rule_y = page_h - m.margin - header_h + 2 * mm
    canv.setStrokeColor(ACCENT)
    canv.setLineWidth(1.2)
    canv.line(left, rule_y, right, rule_y)
    band_y = rule_y
    if continued:
        p = rx.patient
        line = f"Patient: {p.name} \u00b7 {p.age_sex} \u00b7 prescription of {_fmt_date(rx.issued_at)} (continued)"
        canv.setFillColor(MUTED)
        _draw_text(canv, left, rule_y - 4.2 * mm, line, "IM-Sans", b - 0.5, box=right - left)
        band_y = rule_y - CONTINUATION_H
    if rx.sandbox:
        canv.setFillColor(SANDBOX_RED)
        canv.rect(left, band_y - 6.5 * mm, right - left, 5.5 * mm, stroke=0, fill=1)
        canv.setFillColor(colors.white)
        canv.setFont("IM-Sans-Bold", b + 1)
        canv.drawCentredString(page_w / 2, band_y - 4.9 * mm, "SANDBOX / TEST \u2014 not for dispensing")
        canv.setFillColor(colors.Color(0.7, 0.15, 0.12, alpha=0.08))
        canv.translate(page_w / 2, page_h / 2)
        canv.rotate(35)
        canv.setFont("IM-Sans-Bold", b * 5)
        canv.drawCentredString(0, 0, "SANDBOX / TEST")
    canv.restoreState()


def _draw_footer(canv: Canvas, rx: PrintablePrescription, m: _Metrics, page: int, total: int) -> None:
    page_w, _ = m.page
    y = m.margin - 2
    canv.saveState()
    canv.setStrokeColor(RULE)
    canv.setLineWidth(0.5)
    canv.line(m.margin, y + m.base * 1.2, page_w - m.margin, y + m.base * 1.2)
    canv.setFont("IM-Sans", m.base - 1.5)
    canv.setFillColor(MUTED)
    canv.drawString(m.margin, y, f"Rx {rx.rx_id}")
    canv.drawRightString(page_w - m.margin, y, f"Page {page} of {total}")
    canv.restoreState()


class _InvisibleText(Flowable):  # type: ignore[misc]
    """Zero-height flowable writing `text` as invisible, unshaped text so the PDF text layer holds real Unicode."""

    def __init__(self, text: str, font: str, size: float) -> None:
        super().__init__()
        self.text, self.font, self.size = text, font, size
        self.width = self.height = 0

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return (0, 0)

    def draw(self) -> None:
        text = self.canv.beginText()
        text.setTextRenderMode(3)
        text.setFont(self.font, self.size)
        text.setTextOrigin(0, 0)
        text.textOut(self.text)
        self.canv.drawText(text)


def _hindi_block(s: _Styles, text: str) -> list[Flowable]:
    return [Paragraph(markup(text), s.hindi), _InvisibleText(text, "IM-Deva", 1)]


def _patient_band(rx: PrintablePrescription, s: _Styles, width: float) -> Table:
    p = rx.patient

    def cell(label: str, value: str) -> list[Flowable]:
        out: list[Flowable] = [Paragraph(escape(label), s.label), Paragraph(markup(value), s.value)]
        if _DEVA.search(value):
            out.append(_InvisibleText(value, "IM-Deva", 1))
        return out

    row = [
        cell("Patient", p.name),
        cell("Age / Sex", p.age_sex),
        cell("ABHA number", p.abha_number or "\u2014"),
        cell("Date", _fmt_time(rx.issued_at)),
    ]
    table = Table([row], colWidths=[width * 0.28, width * 0.19, width * 0.26, width * 0.27])
    table.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.6, RULE),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f4f7f9")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 4),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _medicine_title(m: Medicine) -> str:
    parts = [m.generic_name.upper(), m.strength, m.dosage_form]
    return " ".join(p for p in parts if p)


def _medicine_cell(m: Medicine, s: _Styles) -> list[Flowable]:
    directions = [p for p in (m.dose, m.frequency, m.route and f"({m.route})") if p]
    cell: list[Flowable] = [Paragraph(markup(_medicine_title(m)), s.drug)]
    cell.append(Paragraph(markup(" \u00b7 ".join(directions)), s.body))
    if m.instructions:
        cell.append(Paragraph(markup(m.instructions), s.body))
    cell.extend(_patient_lines(m.frequency, m.duration_days, m.instructions, m.dose, s))
    return cell


def _patient_lines(frequency: str, days: int, instructions: str | None, dose: str | None, s: _Styles) -> list[Flowable]:
    result = patient_language.line_instructions(
        frequency=frequency, duration_days=days, instructions=instructions, dose=dose
    )
    text = result.text
    if not result.complete:
        note = patient_language.label("english_only")
        text = f"{text} {note}".strip() if note else text
    return _hindi_block(s, text) if text else []


def _rx_table(rows: Sequence[list[Any]], head: list[str], widths: list[float], s: _Styles, tint: Any) -> Table:
    data = [[Paragraph(escape(h), s.head) for h in head], *rows]
    table = Table(data, colWidths=widths, repeatRows=1, splitByRow=1)
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 1), (-1, -1), 0.4, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
    if tint is not None:
        style.append(("BACKGROUND", (0, 1), (-1, -1), tint))
    table.setStyle(TableStyle(style))
    return table


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _medicines(rx: PrintablePrescription, s: _Styles, width: float) -> list[Flowable]:
    if not rx.medicines:
        return []
    rows = [
        [
            Paragraph(str(i), s.body),
            _medicine_cell(m, s),
            Paragraph(_days(m.duration_days), s.body),
            Paragraph(str(m.quantity) if m.quantity is not None else "\u2014", s.body),
        ]
        for i, m in enumerate(rx.medicines, 1)
    ]
    widths = [width * 0.06, width * 0.68, width * 0.14, width * 0.12]
    heading = Paragraph('<font size="+3">\u211e</font>&nbsp; Medicines (generic names)', s.rx_heading)
    return [heading, _rx_table(rows, ["#", "Medicine and directions", "Duration", "Qty"], widths, s, None)]


def _ayush_cell(a: AyushItem, s: _Styles) -> list[Flowable]:
    cell: list[Flowable] = [
        Paragraph(markup(a.name) + '&nbsp;&nbsp;<font size="-1.5" color="#2e6b1f">[AYUSH]</font>', s.drug)
    ]
    directions = [p for p in (a.dose, a.frequency) if p]
    cell.append(Paragraph(markup(" \u00b7 ".join(directions)), s.body))
    if a.instructions:
        cell.append(Paragraph(markup(a.instructions), s.body))
    cell.extend(_patient_lines(a.frequency, a.duration_days, a.instructions, a.dose, s))
    return cell


def _ayush(rx: PrintablePrescription, s: _Styles, width: float) -> list[Flowable]:
    if not rx.ayush:
        return []
    rows = [
        [Paragraph(f"A{i}", s.body), _ayush_cell(a, s), Paragraph(_days(a.duration_days), s.body), ""]
        for i, a in enumerate(rx.ayush, 1)
    ]
    widths = [width * 0.06, width * 0.68, width * 0.14, width * 0.12]
    heading = Paragraph("AYUSH medicines (Ayurveda)", s.section)
    return [heading, _rx_table(rows, ["#", "AYUSH medicine and directions", "Duration", ""], widths, s, AYUSH_TINT)]


def _closing(rx: PrintablePrescription, s: _Styles, width: float, paper: Paper) -> Flowable:
    qr = QRCode(rx.qr_payload, QR_SIZE_MM[paper] * mm)
    qr.size = qr.width = qr.height = max(qr.size, len(qr.matrix) * MIN_MODULE_MM * mm)
    d = rx.doctor
    sig_lines = [
        Paragraph(markup(d.name), s.value),
        Paragraph(markup(f"{d.qualification}"), s.sig),
        Paragraph(markup(f"Reg. No. {d.registration_number} ({d.registration_council})"), s.sig),
        Spacer(1, 3),
        Paragraph("<b>Digitally signed</b>", s.sig),
        Paragraph(f"Signature {escape(rx.signature_short)}", s.sig),
        Paragraph(f"Signed {_fmt_time(rx.signed_at)}", s.sig),
    ]
    qr_cell = [qr, Paragraph("Scan to verify", s.small)]
    if rx.expires_at is not None:
        qr_cell.append(Paragraph(f"Valid until {_fmt_date(rx.expires_at)}", s.small))
    table = Table([[qr_cell, sig_lines]], colWidths=[qr.width + 6, width - qr.width - 6])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("LEFTPADDING", (1, 0), (1, 0), 10),
            ]
        )
    )
    return KeepTogether([Spacer(1, 6), table])


def _story(rx: PrintablePrescription, s: _Styles, width: float, paper: Paper) -> list[Flowable]:
    story: list[Flowable] = [_patient_band(rx, s, width), Spacer(1, 4)]
    if rx.diagnoses:
        text = "; ".join(d.label for d in rx.diagnoses)
        story.append(Paragraph(f"<b>Diagnosis:</b> {markup(text)}", s.body))
    story.extend(_medicines(rx, s, width))
    story.extend(_ayush(rx, s, width))
    if rx.followup:
        story.append(Spacer(1, 4))
        story.append(Paragraph(f"<b>Follow-up:</b> {markup(rx.followup)}", s.body))
        followup_hi = patient_language.translate(rx.followup)
        label = patient_language.label("followup")
        if isinstance(followup_hi, patient_language.Translated) and label:
            story.extend(_hindi_block(s, f"{label}: {followup_hi.text}"))
    story.append(_closing(rx, s, width, paper))
    return story


def render_prescription_pdf(rx: PrintablePrescription, paper: Paper) -> bytes:
    """Lay out the prescription on A5 or A4 and return the PDF bytes.

    Args:
        rx: the signed prescription to print.
        paper: "A5" (the usual prescription pad) or "A4".

    Returns:
        The PDF; deterministic for the same input (fixed creation date and document id).

    Raises:
        PrintError: the bundled fonts cannot be loaded.
        ValueError: `paper` is not A5 or A4.
    """
    if paper not in _METRICS:
        raise ValueError(f"paper must be A5 or A4, not {paper!r}")
    register_fonts()
    m = _METRICS[paper]
    s = _Styles(m.base)
    buffer = io.BytesIO()
    page_w, page_h = m.page
    header_h = _header_height(rx, m)
    frame = Frame(
        m.margin,
        m.margin + m.footer_h,
        page_w - 2 * m.margin,
        page_h - 2 * m.margin - header_h - m.footer_h - (7 * mm if rx.sandbox else 0),
        leftPadding=0,
        rightPadding=0,
        topPadding=0,
        bottomPadding=0,
    )
    doc = BaseDocTemplate(
        buffer,
        pagesize=m.page,
        title=f"Prescription {rx.rx_id}",
        author=rx.doctor.name,
        subject="Prescription",
        creator="IntegMed",
        invariant=1,
    )
    later = Frame(
        frame._x1, frame._y1, frame._width, frame._height - CONTINUATION_H,
        leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
    )  # fmt: skip
    doc.addPageTemplates(
        [
            PageTemplate(
                "first", [frame], onPage=lambda c, _d: _draw_header(c, rx, m, header_h), autoNextPageTemplate="later"
            ),
            PageTemplate("later", [later], onPage=lambda c, _d: _draw_header(c, rx, m, header_h, continued=True)),
        ]
    )

    def canvasmaker(*args: Any, **kwargs: Any) -> _NumberedCanvas:
        return _NumberedCanvas(*args, rx=rx, metrics=m, **kwargs)

    doc.build(_story(rx, s, frame._width, paper), canvasmaker=canvasmaker)
    return buffer.getvalue()
