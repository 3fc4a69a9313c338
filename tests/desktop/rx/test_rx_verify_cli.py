"""`integmed rx verify` on a PNG, a JPEG, a PDF and raw text, damaged and unreadable input, and the
revocation-list cache, with prescriptions chained to the shipped SANDBOX root (as `integmed-server dev` signs)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from desktop.cli import main
from desktop.rx.commands import EXIT_INVALID, EXIT_UNREADABLE, EXIT_VALID
from shared.signing import keys
from shared.signing.certs import issue_certificate, parse_certificate
from shared.signing.revocation import RevokedKey, issue_revocation_list
from shared.signing.rx import SignedPrescription, sign_prescription
from shared.signing.testing import doctor_claims, issuer_claims, make_test_chain, sample_content

REPO = Path(__file__).resolve().parents[3]
INTEGMED = Path(sys.executable).parent / "integmed"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SandboxChain:
    root_key: keys.Ed25519PrivateKey
    doctor_cert: bytes
    signed: SignedPrescription


@pytest.fixture(scope="module")
def sandbox() -> SandboxChain:
    """A prescription signed by a doctor certified by an issuer certified by the shipped sandbox root."""
    root_key = keys.private_key_from_pem((REPO / "sync_server/sandbox/keys/sandbox_root_ed25519.pem").read_bytes())
    issuer_key, doctor_key = keys.generate_private_key(), keys.generate_private_key()
    issuer_cert = issue_certificate(issuer_claims(issuer_key, now=NOW), root_key)
    doctor_cert = issue_certificate(doctor_claims(doctor_key, now=NOW), issuer_key)
    signed = sign_prescription(
        sample_content(issued_at=NOW - timedelta(minutes=1)), doctor_key, doctor_cert, issuer_cert
    )
    return SandboxChain(root_key, doctor_cert, signed)


def _qr_image(text: str) -> Image.Image:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=6, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # No --data-dir: the default data folder, pointed at a temporary home so the test is hermetic.
    env = dict(os.environ, XDG_DATA_HOME=str(home), HOME=str(home))
    return subprocess.run(
        [str(INTEGMED), "rx", "verify", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_png_verifies_valid_through_the_console_script(sandbox: SandboxChain, tmp_path: Path) -> None:
    png = tmp_path / "rx.png"
    _qr_image(sandbox.signed.qr_payload).save(png)
    result = _run(str(png), home=tmp_path)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "VALID" in first.split()
    assert "sandbox root: test prescription, not for dispensing" in first
    assert "सुनीता देवी शर्मा" in result.stdout
    assert "METFORMIN 1000 mg tablet" in result.stdout
    assert "HPR 71-1234-5678-9012" in result.stdout


def test_damaged_payload_is_invalid_without_a_traceback(sandbox: SandboxChain, tmp_path: Path) -> None:
    damaged = sandbox.signed.qr_payload[:-3] + "AAA"
    assert damaged != sandbox.signed.qr_payload
    result = _run(damaged, home=tmp_path)
    assert result.returncode != 0
    assert result.stdout.splitlines()[0].split()[0] == "INVALID"
    assert "(malformed)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "VALID" not in result.stdout.split()


def test_jpeg_photo(sandbox: SandboxChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jpeg = tmp_path / "photo.jpg"
    image = _qr_image(sandbox.signed.qr_payload)
    canvas_image = Image.new("RGB", (image.width + 200, image.height + 300), "white")
    canvas_image.paste(image, (80, 120))  # off-centre on a larger "photo", JPEG-compressed
    canvas_image.save(jpeg, quality=80)
    assert main(["--data-dir", str(tmp_path), "rx", "verify", str(jpeg)]) == EXIT_VALID
    out = capsys.readouterr().out
    assert out.startswith("VALID  (sandbox root")
    assert "Read from: image photo.jpg" in out


def test_pdf_with_the_qr(sandbox: SandboxChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pdf = tmp_path / "rx.pdf"
    page = canvas.Canvas(str(pdf), pagesize=A4)
    page.drawString(20 * mm, 270 * mm, "Prescription")
    page.drawImage(ImageReader(_qr_image(sandbox.signed.qr_payload)), 20 * mm, 200 * mm, 40 * mm, 40 * mm)
    page.save()
    assert main(["--data-dir", str(tmp_path), "rx", "verify", str(pdf)]) == EXIT_VALID
    assert "Read from: PDF rx.pdf" in capsys.readouterr().out


def test_raw_text_and_json(sandbox: SandboxChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "rx", "verify", "--json", sandbox.signed.qr_payload]) == EXIT_VALID
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is True
    assert data["reason"] == "valid"
    assert data["sandbox"] is True
    assert data["content"]["patient"]["name"] == "सुनीता देवी शर्मा"
    assert data["doctor"]["registration_number"] == "KMC-123456"
    assert data["content_hash"] == sandbox.signed.content_hash
    text_file = tmp_path / "payload.txt"
    text_file.write_text(sandbox.signed.qr_payload + "\n", encoding="utf-8")
    assert main(["--data-dir", str(tmp_path), "rx", "verify", str(text_file)]) == EXIT_VALID


def test_prescription_from_an_untrusted_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = make_test_chain().sign(sample_content())
    assert main(["--data-dir", str(tmp_path), "rx", "verify", foreign.qr_payload]) == EXIT_INVALID
    assert capsys.readouterr().out.startswith("INVALID  (untrusted_root)")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("garbage.png", b"\x89PNG\r\n\x1a\nnot really", "is not a readable image"),
        ("blank.png", None, "no QR code found"),
        ("broken.pdf", b"%PDF-1.7\nnonsense", "is not a readable PDF"),
        ("missing.png", "absent", "no such file"),
    ],
)
def test_unreadable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if data is None:
        buffer = io.BytesIO()
        Image.new("L", (200, 200), 255).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue())
    elif isinstance(data, bytes):
        path.write_bytes(data)
    assert main(["--data-dir", str(tmp_path), "rx", "verify", str(path)]) == EXIT_UNREADABLE
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_revocation_list_import_then_verify(
    sandbox: SandboxChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doctor_kid = parse_certificate(sandbox.doctor_cert).kid
    signed_at = sandbox.signed.content.issued_at

    def publish(sequence: int, revoked_at: datetime) -> Path:
        raw = issue_revocation_list(
            [RevokedKey(doctor_kid, revoked_at, "key compromised")],
            sandbox.root_key,
            sequence=sequence,
            issued_at=NOW,
            next_update=NOW + timedelta(days=7),
        )
        path = tmp_path / f"crl-{sequence}.cbor"
        path.write_bytes(raw)
        return path

    data_dir = ["--data-dir", str(tmp_path / "data")]
    # revoked after signing: still valid, with a note
    assert main([*data_dir, "rx", "revocations", "import", str(publish(1, signed_at + timedelta(seconds=30)))]) == 0
    assert "Installed revocation list number 1" in capsys.readouterr().out
    assert (tmp_path / "data/trust/revocations.cbor").is_file()
    assert main([*data_dir, "rx", "verify", sandbox.signed.qr_payload]) == EXIT_VALID
    out = capsys.readouterr().out
    assert "after this prescription was signed" in out
    assert "Revocation data: 1 list(s)" in out
    # a newer list revokes the key from before the signature: invalid
    assert main([*data_dir, "rx", "revocations", "import", str(publish(2, signed_at - timedelta(days=1)))]) == 0
    capsys.readouterr()
    assert main([*data_dir, "rx", "verify", sandbox.signed.qr_payload]) == EXIT_INVALID
    assert capsys.readouterr().out.startswith("INVALID  (revoked_key)")
    # an older list cannot replace a newer one; junk is refused
    assert main([*data_dir, "rx", "revocations", "import", str(publish(1, signed_at))]) == EXIT_INVALID
    assert "is newer" in capsys.readouterr().err
    junk = tmp_path / "junk.cbor"
    junk.write_bytes(b"\x00\x01")
    assert main([*data_dir, "rx", "revocations", "import", str(junk)]) == EXIT_INVALID
    assert "not a valid revocation list (malformed)" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["X" * 600, "HC1:NCFOXN%TS3DH", "  "])
def test_text_that_is_no_prescription_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    assert main(["--data-dir", str(tmp_path), "rx", "verify", text]) == EXIT_INVALID
    assert capsys.readouterr().out.startswith("INVALID  (malformed)")
