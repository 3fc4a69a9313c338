"""What a doctor signs: the prescription content model and its deterministic CBOR encoding.

The Python model is readable (`PrescriptionContent` and its parts); on the wire every field has a small
integer key (table in docs/signing.md), key 0 of the top map is the content format version, absent optional
fields are left out, and times are UTC NumericDate seconds. `canonical_bytes` is RFC 8949 §4.2.1
deterministic CBOR, so the same content always gives the same bytes and the same `content_hash`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import DomainError
from shared.signing import cose
from shared.signing.certs import UtcSeconds

FORMAT_VERSION = 1

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=500)]
Days = Annotated[int, Field(ge=1, le=3650)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Clinic(_Frozen):
    """The clinic printed on the prescription."""

    name: Text
    address: LongText | None = None
    phone: Annotated[str, Field(min_length=1, max_length=30)] | None = None


class Patient(_Frozen):
    """The patient as printed: name, age, sex (ABDM code M/F/O/U) and ABHA number when there is one."""

    name: Text
    age_years: Annotated[int, Field(ge=0, le=150)] | None = None
    sex: Annotated[str, Field(pattern="^[MFOU]$")]
    abha_number: Annotated[str, Field(min_length=1, max_length=20)] | None = None


class Diagnosis(_Frozen):
    """A diagnosis as written and/or its code (e.g. ICD-10); at least one. Codes alone keep the QR small and
    disclose less to whoever scans it."""

    text: LongText | None = None
    code: Annotated[str, Field(min_length=1, max_length=20)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Diagnosis:
        if self.text is None and self.code is None:
            raise ValueError("a diagnosis needs a text or a code")
        return self


class Medicine(_Frozen):
    """One modern-medicine line, by generic name."""

    generic_name: Text
    strength: Text | None = None
    dosage_form: Text | None = None
    route: Text | None = None
    dose: Text | None = None
    frequency: Text
    duration_days: Days
    quantity: Annotated[int, Field(ge=1, le=100000)] | None = None
    instructions: LongText | None = None


class AyushItem(_Frozen):
    """One AYUSH medicine."""

    name: Text
    dose: Text | None = None
    frequency: Text
    duration_days: Days
    instructions: LongText | None = None


class PrescriptionContent(_Frozen):
    """Exactly what the doctor signs and the QR carries.

    ``issued_at`` is the signing instant: it is covered by the signature, and revocation and certificate
    validity are judged at it. ``expires_at`` is when a pharmacy must stop dispensing against it.
    """

    rx_id: uuid.UUID
    issued_at: UtcSeconds
    expires_at: UtcSeconds
    clinic: Clinic
    patient: Patient
    diagnosis: tuple[Diagnosis, ...] = ()
    medicines: tuple[Medicine, ...] = ()
    ayush: tuple[AyushItem, ...] = ()
    followup: LongText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PrescriptionContent:
        if not self.medicines and not self.ayush:
            raise ValueError("a prescription needs at least one medicine")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


# --- wire keys -----------------------------------------------------------------------------------------
# Each model's fields map to small integers (table in docs/signing.md). Key 0 of the top map is the content
# format version. Absent optional fields are left out, never encoded as null.
_KEYS: dict[type[BaseModel], dict[str, int]] = {
    Clinic: {"name": 1, "address": 2, "phone": 3},
    Patient: {"name": 1, "age_years": 2, "sex": 3, "abha_number": 4},
    Diagnosis: {"text": 1, "code": 2},
    Medicine: {
        "generic_name": 1,
        "strength": 2,
        "dosage_form": 3,
        "route": 4,
        "dose": 5,
        "frequency": 6,
        "duration_days": 7,
        "quantity": 8,
        "instructions": 9,
    },
    AyushItem: {"name": 1, "dose": 2, "frequency": 3, "duration_days": 4, "instructions": 5},
    PrescriptionContent: {
        "rx_id": 1,
        "issued_at": 2,
        "expires_at": 3,
        "clinic": 4,
        "patient": 5,
        "diagnosis": 6,
        "medicines": 7,
        "ayush": 8,
        "followup": 9,
    },
}
_CHILD: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
    (PrescriptionContent, "clinic"): Clinic,
    (PrescriptionContent, "patient"): Patient,
    (PrescriptionContent, "diagnosis"): Diagnosis,
    (PrescriptionContent, "medicines"): Medicine,
    (PrescriptionContent, "ayush"): AyushItem,
}
_VERSION_KEY = 0


def _to_wire(value: object) -> object:
    if isinstance(value, BaseModel):
        return {
            label: _to_wire(getattr(value, name))
            for name, label in _KEYS[type(value)].items()
            if getattr(value, name) not in (None, ())
        }
    if isinstance(value, tuple):
        return [_to_wire(item) for item in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, uuid.UUID):
        return value.bytes
    return value


def _from_wire(model: type[BaseModel], data: object, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PayloadError(f"{path or 'content'} is not a map")
    names = {label: name for name, label in _KEYS[model].items()}
    unknown = [key for key in data if key not in names and not (model is PrescriptionContent and key == 0)]
    if unknown:
        raise PayloadError(f"{path or 'content'} has unknown keys {unknown}")
    fields: dict[str, Any] = {}
    for label, value in data.items():
        name = names.get(label)
        if name is None:
            continue
        child = _CHILD.get((model, name))
        if child is not None and isinstance(value, list):
            fields[name] = [_from_wire(child, item, f"{name}[{i}]") for i, item in enumerate(value)]
        elif child is not None:
            fields[name] = _from_wire(child, value, name)
        elif name in ("issued_at", "expires_at") and isinstance(value, int) and 0 <= value <= cose.MAX_NUMERIC_DATE:
            fields[name] = datetime.fromtimestamp(value, UTC)
        elif name == "rx_id" and isinstance(value, bytes) and len(value) == 16:
            fields[name] = uuid.UUID(bytes=value)
        else:
            fields[name] = value
    return fields


class PayloadError(DomainError):
    """The signed content cannot be decoded into a prescription."""

    code = "signing.payload_malformed"


def canonical_bytes(content: PrescriptionContent) -> bytes:
    """Deterministic CBOR of the content (RFC 8949 §4.2.1): the exact bytes that are hashed and signed."""
    wire = _to_wire(content)
    assert isinstance(wire, dict)
    wire[_VERSION_KEY] = FORMAT_VERSION
    return cose.dumps_canonical(wire)


def decode_content(data: bytes) -> PrescriptionContent:
    """The content from its canonical bytes.

    Raises:
        PayloadError: not CBOR, an unknown content version, or fields that fail validation.
    """
    try:
        wire = cose.loads_exact(data)
    except cose.CoseError as exc:
        raise PayloadError(exc.message) from exc
    if not isinstance(wire, dict) or wire.get(_VERSION_KEY) != FORMAT_VERSION:
        raise PayloadError(f"content format version {wire.get(_VERSION_KEY) if isinstance(wire, dict) else None}")
    try:
        return PrescriptionContent.model_validate(_from_wire(PrescriptionContent, wire, ""))
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise PayloadError(f"{'.'.join(map(str, problem['loc'])) or 'content'}: {problem['msg']}") from exc


def content_hash(content: PrescriptionContent) -> str:
    """SHA-256 (hex) of `canonical_bytes`: the ``signature_hash`` stored with a signed prescription."""
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


def content_from_mapping(data: Mapping[str, Any]) -> PrescriptionContent:
    """Build the content from plain data (JSON-like); a convenience for servers and tests.

    Raises:
        pydantic.ValidationError: invalid fields.
    """
    return PrescriptionContent.model_validate(data)
