"""`PrintablePrescription.from_signed`: a real signed prescription prints with its QR, doctor and content."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest
import zxingcpp

from desktop.printing.model import PrintablePrescription, PrintModelError
from desktop.printing.prescription_pdf import render_prescription_pdf
from shared.signing.certs import parse_certificate
from shared.signing.rx import verify_qr_payload
from shared.signing.testing import make_test_chain, sample_content


def test_a_signed_prescription_prints_and_its_qr_verifies() -> None:
    chain = make_test_chain()
    signed = chain.sign(sample_content())
    claims = parse_certificate(chain.doctor_cert).claims
    rx = PrintablePrescription.from_signed(signed.content, claims, signed.content_hash, signed.qr_payload, True)
    assert rx.doctor.registration_number == "KMC-123456" and rx.doctor.hpr_id == "71-1234-5678-9012"
    assert rx.signed_at == signed.content.issued_at and rx.expires_at == signed.content.expires_at
    assert [m.generic_name for m in rx.medicines] == [m.generic_name for m in signed.content.medicines]
    assert [a.name for a in rx.ayush] == ["Triphala churna"]
    doc = pdfium.PdfDocument(render_prescription_pdf(rx, "A5"))
    text = "\n".join(page.get_textpage().get_text_range() for page in doc)
    assert "KMC-123456" in text and "SANDBOX / TEST" in text and "सुनीता देवी शर्मा" in text
    assert "सुबह 1, रात 1, खाने के बाद, 30 दिन तक" in text  # 1-0-1 after food, for 30 days
    assert "5 ग्राम रात, गुनगुने पानी के साथ, 30 दिन तक" in text  # Triphala 5 g 0-0-1 with warm water
    images = [page.render(scale=200 / 72).to_pil().convert("L") for page in doc]
    texts = [b.text for image in images for b in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]
    assert texts == [signed.qr_payload]
    assert verify_qr_payload(texts[0], chain.trust, []).valid


def test_a_certificate_without_registration_cannot_print() -> None:
    chain = make_test_chain()
    signed = chain.sign(sample_content())
    claims = parse_certificate(chain.doctor_cert).claims.model_copy(update={"registration_number": None})
    with pytest.raises(PrintModelError, match="registration_number"):
        PrintablePrescription.from_signed(signed.content, claims, signed.content_hash, signed.qr_payload, False)
