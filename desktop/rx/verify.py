"""Read a prescription QR from text, an image (PNG/JPEG) or a PDF, verify it offline and format the result.

A QR cannot say that its prescriber cancelled it after printing; this PC's store can, once the status event
was signed here or pulled: `with_local_status` folds the events the store holds into the verification
(`shared.signing.standing`), so a cancelled or superseded prescription is INVALID and a dispensed one carries a
"do not dispense it again" note.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from desktop.store.rx_status import StoredEvent, read_known_events
from shared.signing import keys
from shared.signing.certs import CertificateClaims
from shared.signing.revocation import RevocationList
from shared.signing.rx import PREFIX, Verification, verify_qr_payload
from shared.signing.standing import apply_standing
from shared.signing.status import StatusEvent, StatusEventError, read_event
from shared.signing.trust import TrustStore

log = logging.getLogger(__name__)
THIS_PC = "this PC"

PDF_DPI = 300
MAX_PDF_PAGES = 20
SANDBOX_NOTE = "sandbox root: test prescription, not for dispensing"
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_QR_PREFIX = "IMRX"


class UnreadableInput(Exception):
    """The input holds no prescription QR we can read (the message says why); exit status 2."""


def _qr_texts(image: Any) -> list[str]:
    import zxingcpp

    formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    return [barcode.text for barcode in zxingcpp.read_barcodes(image, formats=formats)]


def _pick(found: list[str], source: str) -> str:
    if not found:
        raise UnreadableInput(f"no QR code found in {source}; scan or photograph it again, flat and in focus")
    ours = [text for text in found if text.startswith(_QR_PREFIX)]
    return (ours or found)[0]


def _read_image(path: Path) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            found = _qr_texts(image.convert("L"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise UnreadableInput(f"{path.name} is not a readable image ({exc})") from exc
    return _pick(found, path.name)


def _read_pdf(path: Path) -> str:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(path)
    except (pypdfium2.PdfiumError, OSError) as exc:
        raise UnreadableInput(f"{path.name} is not a readable PDF ({exc})") from exc
    found: list[str] = []
    try:
        # Page by page, stopping at the first prescription QR: a long PDF is not rendered whole.
        for index in range(min(len(document), MAX_PDF_PAGES)):
            found += _qr_texts(document[index].render(scale=PDF_DPI / 72).to_pil().convert("L"))
            if any(text.startswith(_QR_PREFIX) for text in found):
                break
    except pypdfium2.PdfiumError as exc:
        raise UnreadableInput(f"{path.name}: a page cannot be rendered ({exc})") from exc
    finally:
        document.close()
    return _pick(found, path.name)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a long payload is not a valid file name (ENAMETOOLONG), or holds NUL
        return False


def read_payload(argument: str) -> tuple[str, str]:
    """The QR text from a command-line argument: an existing file (image, PDF, or text) or the text itself.

    Returns:
        ``(text, source)`` where source names where it came from.

    Raises:
        UnreadableInput: a file without a readable QR, or a path that does not exist.
    """
    path = Path(argument)
    looks_like_file = not argument.startswith(_QR_PREFIX) and len(argument) < 4096
    if looks_like_file and _is_file(path):
        try:
            head = path.read_bytes()[:16]
        except OSError as exc:
            raise UnreadableInput(f"{argument} cannot be read ({exc.strerror})") from exc
        if head.startswith(b"%PDF-"):
            return _read_pdf(path), f"PDF {path.name}"
        if head.startswith(_IMAGE_MAGIC) or path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            return _read_image(path), f"image {path.name}"
        try:
            return path.read_text(encoding="utf-8").strip(), f"text file {path.name}"
        except (OSError, UnicodeDecodeError) as exc:
            raise UnreadableInput(f"{argument} is neither an image, a PDF nor QR text") from exc
    if looks_like_file and path.suffix.lower() in (".png", ".jpg", ".jpeg", ".pdf", ".txt"):
        raise UnreadableInput(f"{argument}: no such file")
    return argument.strip(), "text"


def verify(
    text: str, trust: TrustStore, revocations: list[RevocationList], now: datetime | None = None
) -> Verification:
    """Verify QR text (never raises for bad input)."""
    return verify_qr_payload(text, trust, revocations, now=now)


def standing_events(stored: Iterable[StoredEvent]) -> list[StatusEvent]:
    """The events of this PC's store that count for a verifier: signed here or pulled, not refused by the server.

    An event the server refused for good (``refused``) did not happen there, so it does not change the answer;
    one waiting to be signed again with another number (``stale``) still states its prescriber's intent.
    """
    out = []
    for event in stored:
        if event.state == "refused":
            continue
        try:
            out.append(read_event(event.cose))
        except StatusEventError as exc:  # pragma: no cover - the store only holds events it checked
            log.error("status event %s in the store is unreadable: %s", event.id, exc)
    return out


def with_local_status(result: Verification, database: Path) -> tuple[Verification, str | None]:
    """`result` with what the store file at `database` knows of the prescription, and a problem if it could not
    be read (the offline answer stands then, with the problem said)."""
    if result.content is None:
        return result, None
    try:
        stored = read_known_events(database, result.content.rx_id)
    except sa.exc.SQLAlchemyError as exc:
        why = getattr(exc, "orig", None) or exc
        return result, f"this PC's records could not be read, so a cancellation here is not known: {why}"
    if not stored:
        return result, None
    return apply_standing(result, standing_events(stored), known_from=THIS_PC), None


# --- formatting ----------------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _join(*parts: str | None, sep: str = " ") -> str:
    return sep.join(part for part in parts if part)


def headline(result: Verification) -> str:
    """The first line: ``VALID`` or ``INVALID`` as a standalone token, then the qualifier or the reason."""
    if result.valid:
        return f"VALID  ({SANDBOX_NOTE})" if result.sandbox else "VALID"
    return f"INVALID  ({result.reason.value}) {result.message}"


def _doctor_line(doctor: CertificateClaims) -> str:
    registration = _join(
        doctor.registration_council, "reg." if doctor.registration_number else None, doctor.registration_number
    )
    return _join(
        doctor.name or "(no name)",
        f"— {doctor.qualification}" if doctor.qualification else None,
        f"; {registration}" if registration else None,
        f"; HPR {doctor.hpr_id}" if doctor.hpr_id else None,
        f"; {doctor.system_of_medicine}" if doctor.system_of_medicine else None,
    ).replace(" ;", ";")


def _content_lines(result: Verification) -> list[str]:
    content = result.content
    if content is None:
        return []
    patient = content.patient
    lines = [
        f"Prescription {content.rx_id}: signed {_when(content.issued_at)}, expires {_when(content.expires_at)}",
        f"Clinic:    {_join(content.clinic.name, content.clinic.address, content.clinic.phone, sep=', ')}",
        "Patient:   "
        + _join(
            patient.name,
            f"{patient.age_years} y" if patient.age_years is not None else None,
            patient.sex,
            f"ABHA {patient.abha_number}" if patient.abha_number else None,
            sep=", ",
        ),
    ]
    if content.diagnosis:
        lines.append(
            "Diagnosis: " + "; ".join(_join(d.text, f"[{d.code}]" if d.code else None) for d in content.diagnosis)
        )
    if content.medicines:
        lines.append("Medicines:")
        for number, m in enumerate(content.medicines, start=1):
            what = _join(m.generic_name, m.strength, m.dosage_form, f"({m.route})" if m.route else None)
            how = _join(
                m.dose,
                m.frequency,
                f"for {m.duration_days} days",
                f"quantity {m.quantity}" if m.quantity else None,
                sep=", ",
            )
            lines.append(f"  {number}. {what}: {how}" + (f"; {m.instructions}" if m.instructions else ""))
    if content.ayush:
        lines.append("AYUSH:")
        for number, a in enumerate(content.ayush, start=1):
            how = _join(a.dose, a.frequency, f"for {a.duration_days} days", sep=", ")
            lines.append(f"  {number}. {a.name}: {how}" + (f"; {a.instructions}" if a.instructions else ""))
    if content.followup:
        lines.append(f"Follow-up: {content.followup}")
    return lines


def format_report(result: Verification, *, source: str, revocations: list[RevocationList]) -> str:
    """The readable report: the headline, what was checked, the prescription and the chain."""
    lines = [headline(result)]
    if result.valid:
        lines.append(f"  {result.message}")
    lines.extend(f"  Note: {note}" for note in result.notes)
    lines.append(f"Read from: {source}")
    if result.doctor is not None:
        lines.append(f"Doctor:    {_doctor_line(result.doctor)}")
    lines.extend(_content_lines(result))
    if result.doctor is not None and result.issuer is not None:
        lines.append(
            f"Chain:     doctor key {result.doctor.kid} -> issuer {result.issuer.kid} -> root {result.root_name}"
            + (" (SANDBOX)" if result.sandbox else "")
        )
    if result.content_hash:
        lines.append(f"Content SHA-256: {result.content_hash}")
    if result.standing is not None:
        s = result.standing
        lines.append(
            f"Status:    {s.status.upper()} {_when(s.at)} ({s.reason}); event {s.seq}, recorded on {s.known_from}"
        )
    else:
        lines.append("Status:    no cancellation or dispensing known to this PC")
    lines.append(revocation_status(revocations))
    return "\n".join(lines) + "\n"


def revocation_status(revocations: list[RevocationList], now: datetime | None = None) -> str:
    """How fresh the revocation data is, for the report."""
    if not revocations:
        return "Revocation data: none installed (integmed rx revocations import FILE)"
    now = now or datetime.now(UTC)
    newest = max(r.issued_at for r in revocations)
    age_days = (now - newest).days
    overdue = [r for r in revocations if r.next_update < now]
    status = f"Revocation data: {len(revocations)} list(s), newest issued {_when(newest)} ({age_days} days old)"
    return status + ("; an update is overdue" if overdue else "")


def _claims_json(claims: CertificateClaims | None) -> dict[str, Any] | None:
    if claims is None:
        return None
    data = claims.model_dump(mode="json", exclude={"public_key"})
    data["kid"] = claims.kid
    data["public_key"] = keys.b64url_encode(claims.public_key)
    return data


def _standing_json(result: Verification) -> dict[str, Any] | None:
    s = result.standing
    if s is None:
        return None
    return {"status": s.status, "at": s.at.isoformat(), "reason": s.reason, "seq": s.seq, "known_from": s.known_from}


def format_json(result: Verification, *, source: str) -> str:
    """The structured result as JSON."""
    data = {
        "valid": result.valid,
        "reason": result.reason.value,
        "message": result.message,
        "sandbox": result.sandbox,
        "source": source,
        "signed_at": result.signed_at.isoformat() if result.signed_at else None,
        "content_hash": result.content_hash,
        "root": result.root_name,
        "doctor": _claims_json(result.doctor),
        "issuer": _claims_json(result.issuer),
        "content": result.content.model_dump(mode="json") if result.content else None,
        "notes": list(result.notes),
        "standing": _standing_json(result),
        "format": PREFIX.rstrip(":"),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
