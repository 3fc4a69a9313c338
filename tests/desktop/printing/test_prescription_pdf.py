"""The printed prescription: golden page images, the QR read back with a real decoder, the PDF text layer.

Golden PNGs live in tests/golden/. Regenerate them after an intended layout change with

    INTEGMED_UPDATE_GOLDEN=1 pytest tests/desktop/printing/test_prescription_pdf.py

then LOOK at the new PNGs and commit them with the change (the diff is reviewed like code).

Tolerance: a page matches when the mean absolute grey-level difference is at most 0.5 (of 255) and at most
0.05 % of pixels differ by more than 64 levels. The pypdfium2 wheel (pinned) bundles its own pdfium and
FreeType, so the same versions render identically on every OS (measured: 0 difference between runs); the margin
absorbs anti-aliasing changes of a minor pdfium update, which move glyph edges by a pixel here and there. A real
change is far larger: replacing one generic name (METFORMIN → METOPROLOL) differs in 0.13 % of the A5 page's
pixels, which `test_a_changed_medicine_breaks_the_golden_comparison` proves is caught.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from desktop.printing.model import Clinic, Medicine, PrintablePrescription, PrintModelError
from desktop.printing.prescription_pdf import QR_SIZE_MM, QRCode, markup, render_prescription_pdf
from tests.desktop.printing.sample import AYUSH, HINDI_PATIENT, MEDICINES, QR_PAYLOAD, sample

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
GOLDEN_DPI = 100
QR_DPI = 200
MAX_MEAN_DIFF = 0.5
MAX_STRONG_FRACTION = 0.0005
UPDATE = os.environ.get("INTEGMED_UPDATE_GOLDEN") == "1"


def pages(pdf: bytes, dpi: int) -> list[Image.Image]:
    doc = pdfium.PdfDocument(pdf)
    return [page.render(scale=dpi / 72).to_pil().convert("L") for page in doc]


def text_of(pdf: bytes) -> str:
    doc = pdfium.PdfDocument(pdf)
    return "\n".join(page.get_textpage().get_text_range() for page in doc)


def compare(image: Image.Image, golden: Path) -> tuple[float, float]:
    want = np.asarray(Image.open(golden).convert("L"), dtype=np.int16)
    got = np.asarray(image, dtype=np.int16)
    assert got.shape == want.shape, f"{golden.name}: page size {got.shape} != golden {want.shape}"
    diff = np.abs(got - want)
    return float(diff.mean()), float((diff > 64).mean())


@pytest.mark.parametrize("paper", ["A5", "A4"])
def test_pages_match_the_golden_images(paper: str) -> None:
    images = pages(render_prescription_pdf(sample(), paper), GOLDEN_DPI)  # type: ignore[arg-type]
    names = [GOLDEN / f"rx_{paper}_page{i}.png" for i in range(1, len(images) + 1)]
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        for old in GOLDEN.glob(f"rx_{paper}_page*.png"):
            old.unlink()
        for image, name in zip(images, names, strict=True):
            image.save(name, optimize=True)
    stored = sorted(GOLDEN.glob(f"rx_{paper}_page*.png"))
    assert [p.name for p in stored] == [p.name for p in names], "page count differs from the golden"
    for image, name in zip(images, names, strict=True):
        mean, strong = compare(image, name)
        assert mean <= MAX_MEAN_DIFF, f"{name.name}: mean difference {mean:.2f}"
        assert strong <= MAX_STRONG_FRACTION, f"{name.name}: {strong:.2%} of pixels differ strongly"


def test_a_changed_medicine_breaks_the_golden_comparison() -> None:
    """The tolerance is tight enough to notice one changed medicine line."""
    changed = sample(medicines=(replace(MEDICINES[0], generic_name="METOPROLOL"), *MEDICINES[1:]))
    image = pages(render_prescription_pdf(changed, "A5"), GOLDEN_DPI)[0]
    mean, strong = compare(image, GOLDEN / "rx_A5_page1.png")
    assert mean > MAX_MEAN_DIFF or strong > MAX_STRONG_FRACTION


@pytest.mark.parametrize("paper", ["A5", "A4"])
def test_the_qr_decodes_to_the_payload_at_its_printed_size(paper: str) -> None:
    images = pages(render_prescription_pdf(sample(), paper), QR_DPI)  # type: ignore[arg-type]
    found = [b for image in images for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert [b.text for b in found] == [QR_PAYLOAD]
    assert found[0].ec_level == "M"
    pos = found[0].position
    side_px = abs(pos.top_right.x - pos.top_left.x)
    side_mm = side_px / QR_DPI * 25.4
    # the symbol without its 4-module quiet zone (of 89 modules at version 16) is at least 25 mm × 81/89
    assert side_mm >= 25 * 81 / 89
    assert QR_SIZE_MM[paper] >= 25


def test_a_version_22_payload_grows_the_qr_and_still_decodes() -> None:
    """The largest payload the signing codec allows (V22-M, 1,134 alphanumeric characters) prints readable."""
    big = "IMRX1:" + (QR_PAYLOAD[6:] * 2)[:1128]
    images = pages(render_prescription_pdf(sample(qr_payload=big), "A5"), QR_DPI)
    found = [b for image in images for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert [b.text for b in found] == [big]
    side_mm = abs(found[0].position.top_right.x - found[0].position.top_left.x) / QR_DPI * 25.4
    assert side_mm >= 105 * 0.35 * 0.97  # 105 modules of at least 0.35 mm (3 % for edge detection)


def test_qr_flowable_uses_level_m_and_a_quiet_zone() -> None:
    qr = QRCode(QR_PAYLOAD, 34 * 72 / 25.4)
    n = len(qr.matrix)
    assert n == 4 * qr.version + 17 + 8
    assert not any(qr.matrix[0]) and not any(row[0] for row in qr.matrix)


@pytest.mark.parametrize("paper", ["A5", "A4"])
def test_text_layer_has_capital_generics_registration_and_hindi(paper: str) -> None:
    text = text_of(render_prescription_pdf(sample(), paper))  # type: ignore[arg-type]
    for m in MEDICINES:
        assert m.generic_name.upper() in text
    for a in AYUSH:
        assert a.name in text
    assert "[AYUSH]" in text
    assert "RMC/2011/45821" in text and "Rajasthan Medical Council" in text
    assert "MBBS, MD (General Medicine)" in text and "HPR ID: 71-2665-5777-1234" in text
    assert HINDI_PATIENT in text
    assert "1 गोली दिन में दो बार (सुबह और रात), खाने के बाद लें, 30 दिन तक" in text
    assert "5 ग्राम सोते समय, गुनगुने पानी के साथ लें, 30 दिन तक" in text
    # the untranslated sentence keeps its English and the Hindi says so
    assert "Do not take more than 4 tablets in a day." in text
    assert "(बाकी निर्देश अंग्रेज़ी में ऊपर दिए हैं)" in text
    assert "Digitally signed" in text and "3F2A 9C01 B7E4 5D22" in text
    assert "91-1234-5678-9012" in text and "54 y / Female" in text
    assert "Review after 4 weeks" in text
    assert "SANDBOX" not in text


def test_sandbox_prints_a_not_for_dispensing_band_on_every_page() -> None:
    doc = pdfium.PdfDocument(render_prescription_pdf(sample(sandbox=True), "A5"))
    assert len(doc) >= 2
    for page in doc:
        assert "SANDBOX / TEST \u2014 not for dispensing" in page.get_textpage().get_text_range()


def test_long_prescription_flows_onto_more_pages_and_drops_nothing() -> None:
    many = tuple(replace(MEDICINES[i % 5], generic_name=f"DRUG NUMBER {i:02d}") for i in range(40))
    pdf = render_prescription_pdf(sample(medicines=many), "A5")
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) >= 4
    text = text_of(pdf)
    for i in range(40):
        assert f"DRUG NUMBER {i:02d}" in text
    assert f"Page {len(doc)} of {len(doc)}" in text
    assert text.count("Medicine and directions") >= 3  # the heading row repeats on each page


def test_every_continuation_page_names_the_patient() -> None:
    doc = pdfium.PdfDocument(render_prescription_pdf(sample(), "A5"))
    texts = [page.get_textpage().get_text_range() for page in doc]
    assert len(texts) == 2
    assert "(continued)" not in texts[0]
    assert "54 y / Female \u00b7 prescription of 20 Nov 2026 (continued)" in texts[1]


def _top_of(textpage: pdfium.PdfTextPage, needle: str) -> float:
    found = textpage.search(needle).get_next()
    assert found is not None, needle
    return float(textpage.get_charbox(found[0])[3])


def test_a_long_letterhead_pushes_the_page_down_instead_of_overlapping() -> None:
    clinic = Clinic(
        "Shri Sanjeevani Integrative Ayurveda and Family Medicine Centre",
        "Plot 12, Sector 4, Near Old Bus Stand, Vaishali Nagar, Jaipur 302021, Rajasthan, India",
        "+91 98290 12345",
    )
    doc = pdfium.PdfDocument(render_prescription_pdf(sample(clinic=clinic, sandbox=True), "A5"))
    page = doc[0].get_textpage()
    assert "Medicine Centre" in page.get_text_range() and "Jaipur 302021, Rajasthan, India" in page.get_text_range()
    phone_top = _top_of(page, "Phone: +91 98290 12345")
    assert _top_of(page, "SANDBOX / TEST") < phone_top - 8
    assert _top_of(page, "ABHA number") < phone_top - 8


def test_rendering_is_deterministic() -> None:
    assert render_prescription_pdf(sample(), "A5") == render_prescription_pdf(sample(), "A5")


def test_unknown_paper_is_refused() -> None:
    with pytest.raises(ValueError, match="A5 or A4"):
        render_prescription_pdf(sample(), "Letter")  # type: ignore[arg-type]


def test_markup_puts_devanagari_runs_in_the_devanagari_font_and_escapes() -> None:
    assert markup("A & B") == "A &amp; B"
    assert markup("Name: सुनीता शर्मा (54)") == 'Name: <font name="IM-Deva">सुनीता शर्मा</font> (54)'


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"medicines": (), "ayush": ()}, "at least one medicine"),
        ({"qr_payload": ""}, "qr_payload"),
        ({"signature_hash": ""}, "signature_hash"),
    ],
)
def test_the_model_refuses_what_must_not_be_printed(changes: dict[str, object], message: str) -> None:
    with pytest.raises(PrintModelError, match=message):
        sample(**changes)


def test_the_model_requires_the_registration_number() -> None:
    rx = sample()
    with pytest.raises(PrintModelError, match="registration_number"):
        replace(rx, doctor=replace(rx.doctor, registration_number=" "))


def test_naive_times_are_refused() -> None:
    rx: PrintablePrescription = sample()
    with pytest.raises(PrintModelError, match="time zone"):
        replace(rx, issued_at=rx.issued_at.replace(tzinfo=None))


def test_medicine_names_are_printed_in_capitals_whatever_the_input_case() -> None:
    rx = sample(medicines=(Medicine("amoxicillin", "Three times daily", 5, "500 mg", "capsule"),), ayush=())
    text = text_of(render_prescription_pdf(rx, "A4"))
    assert "AMOXICILLIN 500 mg capsule" in text and "amoxicillin" not in text
