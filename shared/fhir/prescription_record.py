"""ABDM PrescriptionRecord: a signed prescription → FHIR R4 document Bundle (NRCeS IG `ndhm.in` 6.5.0).

Shape (abdm_hpr_fhir.md §7.1-7.4):
- Bundle `type=document`, `meta.versionId`, `meta.profile` DocumentBundle, `meta.security` V, an identifier,
  `timestamp`, Composition first, `signature` (Author's Signature by the Practitioner).
- Composition (profile PrescriptionRecord): `type` SNOMED 440545006 "Prescription record", subject, encounter,
  author, custodian, title, exactly one section (same code) whose entries are the MedicationRequests, each
  with `reference` and `type`.
- Patient: the ABHA number under `https://healthid.ndhm.gov.in` (type MR), the ABHA address, and the record id.
- Practitioner: the HPR ID under `https://doctor.ndhm.gov.in` (type MD) and the council registration number.
- One MedicationRequest per medicine line; medication as text only ("METFORMIN 500 mg tablet"), since the
  profile allows only SNOMED codings and we hold none. AYUSH items are MedicationRequests too, with a category
  from IntegMed's own code system (`AYUSH_CATEGORY_SYSTEM`; the IG defines none).
- Conditions (ICD-10 or SNOMED coded when a code is given) are referenced from each MedicationRequest's
  `reasonReference`; the section's closed slicing admits only MedicationRequest and Binary, so they are bundle
  entries without a section.

Every `fullUrl` is `urn:uuid:<id>`; resources without an id of their own get a UUIDv5 derived from the
prescription id and their position, so the same input always gives the same document.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal, TypedDict

from pydantic import JsonValue

from shared.rx.timing import UCUM

Json = dict[str, JsonValue]

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
NDHM_ID_TYPE = "https://nrces.in/ndhm/fhir/r4/CodeSystem/ndhm-identifier-type-code"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
PROFILE = "https://nrces.in/ndhm/fhir/r4/StructureDefinition/"
ABHA_SYSTEM = "https://healthid.ndhm.gov.in"
HPR_SYSTEM = "https://doctor.ndhm.gov.in"
HFR_SYSTEM = "https://facility.ndhm.gov.in"
URI_SYSTEM = "urn:ietf:rfc:3986"
AYUSH_CATEGORY_SYSTEM = "https://integmed.in/fhir/CodeSystem/system-of-medicine"
SIGNING_KEY_SYSTEM = "https://integmed.in/fhir/sid/signing-key"
PRESCRIPTION_RECORD = {"system": SNOMED, "code": "440545006", "display": "Prescription record"}
ORAL_ROUTE = {"system": SNOMED, "code": "26643006", "display": "Oral Route"}
_NAMESPACE = uuid.UUID("6f1f4f38-5b7e-4c55-9d59-6b8f4a9c2f10")
_ICD10_CODE = re.compile(r"^[A-Z]\d{2}(\.[0-9A-Z]{1,4})?$")
_GENDER = {"M": "male", "F": "female", "O": "other", "U": "unknown"}


class PatientIn(TypedDict, total=False):
    """The patient: `id` and `name` required; gender M/F/O/U (or FHIR words); birth_year; ABHA ids."""

    id: uuid.UUID
    name: str
    gender: str
    birth_year: int
    age: int
    abha_number: str
    abha_address: str


class PractitionerIn(TypedDict, total=False):
    """The prescriber: `id`, `name`, registration council and number required; HPR ID and qualification."""

    id: uuid.UUID
    name: str
    hpr_id: str
    qualification: str
    registration_council: str
    registration_number: str


class ClinicIn(TypedDict, total=False):
    """The clinic: `id` and `name` required; `hfr_id` when registered in HFR."""

    id: uuid.UUID
    name: str
    hfr_id: str


class DiagnosisIn(TypedDict, total=False):
    """A diagnosis: text and/or code; `system` "icd10" or "snomed" (inferred from the code when absent)."""

    text: str
    code: str
    system: Literal["icd10", "snomed"]


class MedicineIn(TypedDict, total=False):
    """A medicine line (shared.signing content fields) plus an optional `timing` dict from shared.rx.timing."""

    generic_name: str
    strength: str
    dosage_form: str
    route: str
    dose: str
    frequency: str
    duration_days: int
    quantity: int
    instructions: str
    timing: Mapping[str, JsonValue]


class AyushIn(TypedDict, total=False):
    """An AYUSH item."""

    name: str
    dose: str
    frequency: str
    duration_days: int
    instructions: str


class SignatureIn(TypedDict):
    """The signature facts: hex `hash` of the signature, `signed_at`, the signing key id `kid`."""

    hash: str
    signed_at: datetime
    kid: str


class PrescriptionRecordError(ValueError):
    """The input cannot make a valid PrescriptionRecord (the message names the field)."""


def _urn(ident: uuid.UUID | str) -> str:
    return f"urn:uuid:{ident}"


def _derived(rx_id: uuid.UUID, what: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{rx_id}/{what}")


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise PrescriptionRecordError("times must carry a time zone")
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _coding(system: str, code: str, display: str) -> Json:
    return {"system": system, "code": code, "display": display}


def _meta(profile: str) -> Json:
    return {"profile": [PROFILE + profile]}


def _require(mapping: Mapping[str, object], keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if not mapping.get(k)]
    if missing:
        raise PrescriptionRecordError(f"{where}: missing {', '.join(missing)}")


def _patient(p: PatientIn) -> Json:
    _require(p, ("id", "name"), "patient")
    identifiers: list[JsonValue] = []
    if p.get("abha_number"):
        identifiers.append(
            {
                "type": {"coding": [_coding(V2_0203, "MR", "Medical record number")]},
                "system": ABHA_SYSTEM,
                "value": p["abha_number"],
            }
        )
    if p.get("abha_address"):
        identifiers.append(
            {
                "type": {"coding": [_coding(NDHM_ID_TYPE, "ABHA", "ABHA Address")]},
                "system": ABHA_SYSTEM,
                "value": p["abha_address"],
            }
        )
    identifiers.append(
        {
            "type": {"coding": [_coding(V2_0203, "MR", "Medical record number")]},
            "system": URI_SYSTEM,
            "value": _urn(p["id"]),
        }
    )
    out: Json = {
        "resourceType": "Patient",
        "id": str(p["id"]),
        "meta": _meta("Patient"),
        "identifier": identifiers,
        "name": [{"text": p["name"]}],
    }
    gender = p.get("gender")
    if gender:
        out["gender"] = _GENDER.get(gender, gender)
    if p.get("birth_year"):
        out["birthDate"] = f"{p['birth_year']:04d}"
    return out


def _practitioner(d: PractitionerIn) -> Json:
    _require(d, ("id", "name", "registration_council", "registration_number"), "practitioner")
    identifiers: list[JsonValue] = []
    if d.get("hpr_id"):
        identifiers.append(
            {
                "type": {"coding": [_coding(V2_0203, "MD", "Medical License number")]},
                "system": HPR_SYSTEM,
                "value": d["hpr_id"],
            }
        )
    identifiers.append(
        {
            "type": {
                "coding": [_coding(V2_0203, "MD", "Medical License number")],
                "text": f"{d['registration_council']} registration number",
            },
            "value": d["registration_number"],
            "assigner": {"display": d["registration_council"]},
        }
    )
    out: Json = {
        "resourceType": "Practitioner",
        "id": str(d["id"]),
        "meta": _meta("Practitioner"),
        "identifier": identifiers,
        "name": [{"text": d["name"]}],
    }
    if d.get("qualification"):
        out["qualification"] = [{"code": {"text": d["qualification"]}}]
    return out


def _organization(c: ClinicIn) -> Json:
    _require(c, ("id", "name"), "clinic")
    identifiers: list[JsonValue] = []
    if c.get("hfr_id"):
        identifiers.append(
            {
                "type": {"coding": [_coding(V2_0203, "PRN", "Provider number")]},
                "system": HFR_SYSTEM,
                "value": c["hfr_id"],
            }
        )
    identifiers.append({"system": URI_SYSTEM, "value": _urn(c["id"])})
    return {
        "resourceType": "Organization",
        "id": str(c["id"]),
        "meta": _meta("Organization"),
        "identifier": identifiers,
        "name": c["name"],
    }


def _condition(rx_id: uuid.UUID, index: int, d: DiagnosisIn, patient_ref: str) -> Json:
    if not d.get("text") and not d.get("code"):
        raise PrescriptionRecordError(f"diagnoses[{index}]: needs a text or a code")
    code: Json = {}
    if d.get("code"):
        system = d.get("system") or ("icd10" if _ICD10_CODE.match(d["code"]) else None)
        if system is None and d["code"].isdigit():
            system = "snomed"
        if system is None:
            raise PrescriptionRecordError(f"diagnoses[{index}]: say whether {d['code']!r} is icd10 or snomed")
        coding: Json = {"system": ICD10 if system == "icd10" else SNOMED, "code": d["code"]}
        if d.get("text"):
            coding["display"] = d["text"]
        code["coding"] = [coding]
    if d.get("text"):
        code["text"] = d["text"]
    return {
        "resourceType": "Condition",
        "id": str(_derived(rx_id, f"condition/{index}")),
        "meta": _meta("Condition"),
        "code": code,
        "subject": {"reference": patient_ref},
    }


_REPEAT_KEYS = ("frequency", "period", "periodUnit", "when", "dayOfWeek", "count", "boundsDuration")


def _timing(timing: Mapping[str, JsonValue] | None, days: int | None) -> Json | None:
    repeat: Json = {}
    out: Json = {}
    if timing:
        repeat.update({k: timing[k] for k in _REPEAT_KEYS if k in timing})
        code = timing.get("code")
        if isinstance(code, str):
            out["code"] = {"coding": [{"system": GTS, "code": code}]}
    if "boundsDuration" not in repeat and days:
        repeat["boundsDuration"] = {"value": days, "unit": "d", "system": UCUM, "code": "d"}
    if repeat:
        out["repeat"] = repeat
    return out or None


def _dosage(line: Mapping[str, object], timing: Mapping[str, JsonValue] | None) -> Json:
    words = [line.get("dose"), line.get("frequency"), line.get("instructions")]
    days = line.get("duration_days")
    if isinstance(days, int):
        words.append(f"for {days} day{'s' if days != 1 else ''}")
    dosage: Json = {"text": " ".join(str(w).strip() for w in words if w)}
    fhir_timing = _timing(timing, days if isinstance(days, int) else None)
    if fhir_timing:
        dosage["timing"] = fhir_timing
    if timing and timing.get("as_needed") is True:
        dosage["asNeededBoolean"] = True
    route = line.get("route")
    if isinstance(route, str) and route.strip().lower() == "oral":
        dosage["route"] = {"coding": [dict(ORAL_ROUTE)], "text": "oral"}
    elif isinstance(route, str) and route.strip():
        dosage["route"] = {"text": route}
    return dosage


def _medication_request(
    *,
    ident: uuid.UUID,
    text: str,
    line: Mapping[str, object],
    timing: Mapping[str, JsonValue] | None,
    refs: Mapping[str, str],
    reasons: Sequence[str],
    authored_on: str,
    ayush: bool,
) -> Json:
    out: Json = {
        "resourceType": "MedicationRequest",
        "id": str(ident),
        "meta": _meta("MedicationRequest"),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": text},
        "subject": {"reference": refs["patient"]},
        "encounter": {"reference": refs["encounter"]},
        "authoredOn": authored_on,
        "requester": {"reference": refs["practitioner"]},
        "dosageInstruction": [_dosage(line, timing)],
    }
    if ayush:
        out["category"] = [{"coding": [_coding(AYUSH_CATEGORY_SYSTEM, "AYUSH", "AYUSH medicine")], "text": "AYUSH"}]
    if reasons:
        out["reasonReference"] = [{"reference": r} for r in reasons]
    dispense: Json = {}
    quantity = line.get("quantity")
    if isinstance(quantity, int):
        dispense["quantity"] = {"value": quantity}
    days = line.get("duration_days")
    if isinstance(days, int):
        dispense["expectedSupplyDuration"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
    if dispense:
        out["dispenseRequest"] = dispense
    return out


def _medicine_text(m: MedicineIn, index: int) -> str:
    _require(m, ("generic_name", "frequency"), f"medicines[{index}]")
    parts = [m["generic_name"].upper(), m.get("strength"), m.get("dosage_form")]
    return " ".join(p for p in parts if p)


def build_prescription_record(
    *,
    rx_id: uuid.UUID,
    issued_at: datetime,
    patient: PatientIn,
    practitioner: PractitionerIn,
    clinic: ClinicIn,
    encounter_id: uuid.UUID,
    diagnoses: Sequence[DiagnosisIn] = (),
    medicines: Sequence[MedicineIn] = (),
    ayush: Sequence[AyushIn] = (),
    signature: SignatureIn,
) -> Json:
    """Build the ABDM PrescriptionRecord document Bundle of a signed prescription.

    Args:
        rx_id: the prescription id (the Bundle id; derived resource ids come from it).
        issued_at: when it was signed (Composition.date, authoredOn, Bundle.timestamp).
        patient: see `PatientIn`.
        practitioner: see `PractitionerIn`.
        clinic: see `ClinicIn` (the custodian).
        encounter_id: the visit the prescription belongs to.
        diagnoses: Conditions, referenced as each MedicationRequest's reason.
        medicines: modern-medicine lines, one MedicationRequest each.
        ayush: AYUSH items, one MedicationRequest each, categorised AYUSH.
        signature: the hash, time and key id of the doctor's signature (Bundle.signature).

    Returns:
        The Bundle as a JSON-ready dict (times as UTC instants).

    Raises:
        PrescriptionRecordError: a required field is missing, no medicine is given or a time is naive.
    """
    if not medicines and not ayush:
        raise PrescriptionRecordError("a prescription record needs at least one medicine")
    issued = _instant(issued_at)
    refs = {
        "patient": _urn(patient.get("id", "")),
        "practitioner": _urn(practitioner.get("id", "")),
        "organization": _urn(clinic.get("id", "")),
        "encounter": _urn(encounter_id),
    }
    resources: list[Json] = [_patient(patient), _practitioner(practitioner), _organization(clinic)]
    resources.append(
        {
            "resourceType": "Encounter",
            "id": str(encounter_id),
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
                "display": "ambulatory",
            },
            "subject": {"reference": refs["patient"]},
        }
    )
    conditions = [_condition(rx_id, i, d, refs["patient"]) for i, d in enumerate(diagnoses)]
    reasons = [_urn(str(c["id"])) for c in conditions]
    requests: list[Json] = []
    for i, m in enumerate(medicines):
        requests.append(
            _medication_request(
                ident=_derived(rx_id, f"medication/{i}"),
                text=_medicine_text(m, i),
                line=dict(m),
                timing=m.get("timing"),
                refs=refs,
                reasons=reasons,
                authored_on=issued,
                ayush=False,
            )
        )
    for i, a in enumerate(ayush):
        _require(a, ("name", "frequency"), f"ayush[{i}]")
        requests.append(
            _medication_request(
                ident=_derived(rx_id, f"ayush/{i}"),
                text=a["name"],
                line=dict(a),
                timing=None,
                refs=refs,
                reasons=reasons,
                authored_on=issued,
                ayush=True,
            )
        )
    composition: Json = {
        "resourceType": "Composition",
        "id": str(_derived(rx_id, "composition")),
        "meta": _meta("PrescriptionRecord"),
        "identifier": {"system": URI_SYSTEM, "value": _urn(rx_id)},
        "status": "final",
        "type": {"coding": [dict(PRESCRIPTION_RECORD)], "text": "Prescription record"},
        "subject": {"reference": refs["patient"]},
        "encounter": {"reference": refs["encounter"]},
        "date": issued,
        "author": [{"reference": refs["practitioner"]}],
        "title": "Prescription record",
        "custodian": {"reference": refs["organization"]},
        "section": [
            {
                "title": "Prescription record",
                "code": {"coding": [dict(PRESCRIPTION_RECORD)]},
                "entry": [{"reference": _urn(str(r["id"])), "type": "MedicationRequest"} for r in requests],
            }
        ],
    }
    entries: list[JsonValue] = [
        {"fullUrl": _urn(str(r["id"])), "resource": r} for r in [composition, *resources, *conditions, *requests]
    ]
    return {
        "resourceType": "Bundle",
        "id": str(rx_id),
        "meta": {
            "versionId": "1",
            "lastUpdated": _instant(signature["signed_at"]),
            "profile": [PROFILE + "DocumentBundle"],
            "security": [_coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "V", "very restricted")],
        },
        "identifier": {"system": URI_SYSTEM, "value": _urn(rx_id)},
        "type": "document",
        "timestamp": issued,
        "entry": entries,
        "signature": _signature(signature, refs),
    }


def _signature(signature: SignatureIn, refs: Mapping[str, str]) -> Json:
    try:
        digest = bytes.fromhex(signature["hash"])
    except ValueError as exc:
        raise PrescriptionRecordError("signature.hash must be hexadecimal") from exc
    if not digest or not signature["kid"]:
        raise PrescriptionRecordError("signature: hash and kid are required")
    return {
        "type": [_coding("urn:iso-astm:E1762-95:2013", "1.2.840.10065.1.12.1.1", "Author's Signature")],
        "when": _instant(signature["signed_at"]),
        "who": {
            "reference": refs["practitioner"],
            "identifier": {"system": SIGNING_KEY_SYSTEM, "value": signature["kid"]},
        },
        "onBehalfOf": {"reference": refs["organization"]},
        "data": base64.b64encode(digest).decode("ascii"),
    }
