"""P4 benchmark: sign + QR + A5 PDF of a 5-medicine prescription on the desktop, and verify from a PNG.

*Sign and print* is what the desktop does when the doctor presses Sign: the doctor's key (from the secret
store, certified) signs the canonical content (`desktop.services.signing.SigningService`, which also verifies
the QR as a pharmacist would before handing it back), and the A5 prescription with its QR is laid out
(`desktop.printing.render_prescription_pdf`). *Verify from PNG* is the pharmacist's side: `integmed rx verify`
reading a photo/scan — decode the QR from a PNG with zxing-cpp and verify the chain and signature offline.

Pinned to one core. Fonts and knowledge files load once before timing (the app does that at start-up).

    .venv/bin/python bench/rx_sign_print.py               # 200 rounds each
    .venv/bin/python bench/rx_sign_print.py --rounds 50

Goals (P4): sign + QR + A5 PDF p50 < 300 ms; verify from a PNG: reported.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import qrcode
from keyring.backends import fail
from qrcode.constants import ERROR_CORRECT_M

from desktop.printing.model import PrintablePrescription
from desktop.printing.prescription_pdf import render_prescription_pdf
from desktop.rx.verify import read_payload, verify
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.signing import SigningService
from shared.signing.certs import issue_certificate
from shared.signing.testing import doctor_claims, make_test_chain, sample_content

USER = uuid.UUID("019ab000-0000-7000-8000-0000000000d1")


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1e6)
    return sorted(out)


def summary(samples: list[float]) -> str:
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return f"p50 {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    with tempfile.TemporaryDirectory(prefix="integmed-bench-p4-") as tmp:
        data_dir = Path(tmp)
        doctor_keys = DoctorKeys(SecretStore("signing", data_dir, system_keyring=fail.Keyring()), data_dir)
        chain = make_test_chain()
        claims = doctor_claims(chain.doctor_key, now=datetime.now(UTC)).model_copy(
            update={"public_key": doctor_keys.public_key(USER)}
        )
        doctor_keys.store_certificates(USER, issue_certificate(claims, chain.issuer_key), chain.issuer_cert)
        service = SigningService(doctor_keys, data_dir, trust=chain.trust)
        content = sample_content(medicines=5)

        def sign_and_print() -> bytes:
            signed = service.sign(USER, content)
            rx = PrintablePrescription.from_signed(content, claims, signed.content_hash, signed.qr_payload, True)
            return render_prescription_pdf(rx, "A5")

        pdf = sign_and_print()  # warm-up: fonts, shaping caches
        for _ in range(5):
            sign_and_print()
        print_samples = timed(sign_and_print, args.rounds)

        signed = service.sign(USER, content)
        image = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=4, border=4)
        image.add_data(signed.qr_payload)
        buffer = io.BytesIO()
        image.make_image().save(buffer)
        png = data_dir / "rx.png"
        png.write_bytes(buffer.getvalue())

        def verify_png() -> None:
            text, _ = read_payload(str(png))
            result = verify(text, chain.trust, [])
            assert result.valid, result.message

        for _ in range(5):
            verify_png()
        verify_samples = timed(verify_png, args.rounds)

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}; pinned to one core")
    print(f"A5 PDF: {len(pdf):,} bytes; QR payload {len(signed.qr_payload):,} characters")
    print(f"sign + QR + A5 PDF (5 medicines): {summary(print_samples)}  goal p50 < 300 ms")
    print(f"verify from a {len(buffer.getvalue()):,}-byte PNG: {summary(verify_samples)}")


if __name__ == "__main__":
    main()
