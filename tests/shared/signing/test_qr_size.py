"""QR size of a realistic signed prescription, measured with `qrcode`, and a decode at print size with zxing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import qrcode
import zxingcpp
from PIL import Image, ImageFilter
from qrcode.constants import ERROR_CORRECT_M

from shared.signing import rx
from shared.signing.testing import make_test_chain, sample_content

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DOTS_PER_MM = 300 / 25.4


def _qr(text: str) -> qrcode.QRCode:  # type: ignore[type-arg]
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code


def test_capacity_table_matches_the_qrcode_library() -> None:
    for version in (1, 10, 16, 20, 22, 40):
        capacity = rx.QR_ALNUM_CAPACITY_M[version - 1]
        assert _qr("A" * capacity).version == version
        if version < 40:
            assert _qr("A" * (capacity + 1)).version == version + 1
    assert rx.MAX_QR_CHARS == 1134


@pytest.mark.parametrize("with_issuer", [True, False])
def test_five_medicine_prescription_with_devanagari_name_fits_the_budget(with_issuer: bool) -> None:
    chain = make_test_chain(now=NOW)
    content = sample_content(issued_at=NOW, medicines=5)
    assert content.patient.name == "सुनीता देवी शर्मा"
    assert len(content.medicines) + len(content.ayush) == 5
    text = chain.sign(content, with_issuer=with_issuer).qr_payload
    version = _qr(text).version
    assert version == rx.qr_version(text)
    assert version <= rx.MAX_QR_VERSION
    # Measured (docs/signing.md): self-contained 1109 chars -> V22; without the issuer certificate 911 -> V20.
    assert version <= (22 if with_issuer else 20)


@pytest.mark.parametrize("with_issuer", [True, False])
def test_qr_rasterised_at_25_mm_300_dpi_decodes_back_to_the_payload(with_issuer: bool) -> None:
    """A simulated print: the QR box-sampled to 25 mm at 300 dpi, blurred (σ 0.8 dot, toner spread) and turned
    3° (a skewed scan), read with zxing-cpp. A simulation, not a physical print-and-scan: docs/signing.md."""
    chain = make_test_chain(now=NOW)
    if not with_issuer:
        chain.trust.learn_issuer(chain.issuer_cert, at=NOW)
    text = chain.sign(sample_content(issued_at=NOW), with_issuer=with_issuer).qr_payload
    image = _qr(text).make_image(fill_color="black", back_color="white").get_image().convert("L")
    pixels = round(25 * DOTS_PER_MM)
    printed = (
        image.resize((pixels, pixels), Image.Resampling.BOX)
        .filter(ImageFilter.GaussianBlur(0.8))
        .rotate(3, resample=Image.Resampling.BILINEAR, fillcolor=255, expand=True)
    )
    (barcode,) = zxingcpp.read_barcodes(printed, formats=zxingcpp.BarcodeFormat.QRCode)
    assert barcode.text == text
    assert rx.verify_qr_payload(barcode.text, chain.trust, now=NOW).valid
