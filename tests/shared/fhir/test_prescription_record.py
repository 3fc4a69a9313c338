"""ABDM PrescriptionRecord bundle: validates with fhir.resources R4B, follows the NRCeS rules, is deterministic.

The golden JSON (tests/golden/prescription_record.json) is regenerated with INTEGMED_UPDATE_GOLDEN=1; review
its diff like code.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.fhir.prescription_record import (
    ABHA_SYSTEM,
    AYUSH_CATEGORY_SYSTEM,
    HPR_SYSTEM,
    MedicineIn,
    PrescriptionRecordError,
    build_prescription_record,
)
from shared.fhir.validation import BundleInvalid, validate_bundle
from shared.rx.formulary import Formulary
from shared.rx.shorthand import expand

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "prescription_record.json"
RX_ID = uuid.UUID("019abcde-0000-7000-8000-00000000cafe")
PATIENT_ID = uuid.UUID("019abcde-0000-7000-8000-0000000000a1")
DOCTOR_ID = uuid.UUID("019abcde-0000-7000-8000-0000000000d1")
CLINIC_ID = uuid.UUID("019abcde-0000-7000-8000-0000000000c1")
ENCOUNTER_ID = uuid.UUID("019abcde-0000-7000-8000-0000000000e1")


def _from_shorthand(line: str) -> MedicineIn:
    expanded = expand(line, Formulary.load_default())
    assert expanded.is_complete, expanded.unresolved
    out: MedicineIn = {"generic_name": expanded.generic_name or "", "frequency": expanded.frequency or "",
                       "timing": expanded.timing}  # fmt: skip
    for key in ("strength", "dosage_form", "route", "duration_days", "quantity", "instructions"):
        value = getattr(expanded, key)
        if value is not None:
            out[key] = value  # type: ignore[literal-required]
    return out


def inputs() -> dict[str, Any]:
    return {
        "rx_id": RX_ID,
        "issued_at": datetime(2026, 11, 20, 5, 30, tzinfo=UTC),
        "patient": {"id": PATIENT_ID, "name": "श्रीमती सुनीता शर्मा", "gender": "F", "birth_year": 1972,
                    "abha_number": "91-1234-5678-9012", "abha_address": "sunita.sharma@abdm"},
        "practitioner": {"id": DOCTOR_ID, "name": "Dr. Anil Kumar Verma", "hpr_id": "71-2665-5777-1234",
                         "qualification": "MBBS, MD (General Medicine)",
                         "registration_council": "Rajasthan Medical Council", "registration_number": "RMC/2011/45821"},
        "clinic": {"id": CLINIC_ID, "name": "Arogya Family Clinic", "hfr_id": "IN0810000123"},
        "encounter_id": ENCOUNTER_ID,
        "diagnoses": [{"text": "Type 2 diabetes mellitus", "code": "E11.9"},
                      {"text": "Essential hypertension", "code": "59621000", "system": "snomed"}],
        "medicines": [
            _from_shorthand("metformin 500 1-0-1 pc x 30d"),
            _from_shorthand("atorvastatin 10 hs x 30d"),
            {"generic_name": "paracetamol", "strength": "500 mg", "dosage_form": "tablet", "route": "oral",
             "dose": "1 tablet", "frequency": "When needed", "duration_days": 5, "quantity": 10},
        ],
        "ayush": [{"name": "Triphala churna", "dose": "5 g", "frequency": "At bedtime", "duration_days": 30,
                   "instructions": "Take with warm water."}],
        "signature": {"hash": "3f2a9c01b7e45d2288aa01fe9c3b7d10", "kid": "a1b2c3d4e5f60718",
                      "signed_at": datetime(2026, 11, 20, 5, 31, tzinfo=UTC)},
    }  # fmt: skip


def bundle() -> dict[str, Any]:
    return build_prescription_record(**inputs())


def resources(b: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == kind]


def test_bundle_validates_with_fhir_resources_r4b() -> None:
    model = validate_bundle(bundle())
    assert model.type == "document"
    assert model.entry[0].resource.get_resource_type() == "Composition"


def test_matches_the_golden_json() -> None:
    text = json.dumps(bundle(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if os.environ.get("INTEGMED_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_same_input_gives_the_same_document() -> None:
    assert bundle() == bundle()
    other = build_prescription_record(**{**inputs(), "rx_id": uuid.UUID(int=RX_ID.int + 1)})
    assert {e["fullUrl"] for e in other["entry"]} != {e["fullUrl"] for e in bundle()["entry"]}


def test_composition_is_a_prescription_record_with_one_section() -> None:
    b = bundle()
    comp = b["entry"][0]["resource"]
    assert comp["type"]["coding"] == [{"system": "http://snomed.info/sct", "code": "440545006",
                                       "display": "Prescription record"}]  # fmt: skip
    assert comp["meta"]["profile"] == ["https://nrces.in/ndhm/fhir/r4/StructureDefinition/PrescriptionRecord"]
    assert comp["encounter"] == {"reference": f"urn:uuid:{ENCOUNTER_ID}"}
    [section] = comp["section"]
    assert section["code"]["coding"][0]["code"] == "440545006"
    assert [e["type"] for e in section["entry"]] == ["MedicationRequest"] * 4
    urls = {e["fullUrl"] for e in b["entry"]}
    assert all(e["reference"] in urls for e in section["entry"])
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in b["entry"])
    assert b["meta"]["versionId"] == "1" and b["type"] == "document"


def test_identifiers_abha_and_hpr() -> None:
    b = bundle()
    [patient] = resources(b, "Patient")
    abha = [i for i in patient["identifier"] if i["system"] == ABHA_SYSTEM]
    assert abha[0]["value"] == "91-1234-5678-9012" and abha[0]["type"]["coding"][0]["code"] == "MR"
    assert abha[1]["value"] == "sunita.sharma@abdm"
    assert patient["gender"] == "female" and patient["birthDate"] == "1972"
    [doctor] = resources(b, "Practitioner")
    hpr = [i for i in doctor["identifier"] if i.get("system") == HPR_SYSTEM]
    assert hpr == [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MD",
                                         "display": "Medical License number"}]},
                    "system": HPR_SYSTEM, "value": "71-2665-5777-1234"}]  # fmt: skip
    assert any(i["value"] == "RMC/2011/45821" for i in doctor["identifier"])
    [org] = resources(b, "Organization")
    assert org["identifier"][0]["system"] == "https://facility.ndhm.gov.in"


def test_one_medication_request_per_line_and_ayush_marked() -> None:
    b = bundle()
    requests = resources(b, "MedicationRequest")
    assert [r["medicationCodeableConcept"]["text"] for r in requests] == [
        "METFORMIN 500mg tablet", "ATORVASTATIN 10mg tablet", "PARACETAMOL 500 mg tablet", "Triphala churna",
    ]  # fmt: skip
    assert [("category" in r) for r in requests] == [False, False, False, True]
    assert requests[3]["category"][0]["coding"][0] == {"system": AYUSH_CATEGORY_SYSTEM, "code": "AYUSH",
                                                       "display": "AYUSH medicine"}  # fmt: skip
    metformin = requests[0]
    timing = metformin["dosageInstruction"][0]["timing"]
    assert timing["repeat"]["frequency"] == 2 and timing["repeat"]["when"] == ["PCM", "PCV"]
    assert timing["code"]["coding"][0]["code"] == "BID"
    assert metformin["dispenseRequest"]["quantity"] == {"value": 60}
    assert metformin["dispenseRequest"]["expectedSupplyDuration"]["value"] == 30
    assert metformin["dosageInstruction"][0]["route"]["coding"][0]["code"] == "26643006"
    assert all(r["requester"] == {"reference": f"urn:uuid:{DOCTOR_ID}"} for r in requests)
    conditions = resources(b, "Condition")
    assert [c["code"]["coding"][0]["system"] for c in conditions] == [
        "http://hl7.org/fhir/sid/icd-10", "http://snomed.info/sct"]  # fmt: skip
    assert len(requests[0]["reasonReference"]) == 2


def test_signature_carries_hash_time_and_key() -> None:
    sig = bundle()["signature"]
    assert sig["type"][0]["code"] == "1.2.840.10065.1.12.1.1"
    assert sig["when"] == "2026-11-20T05:31:00Z"
    assert sig["data"] == "PyqcAbfkXSKIqgH+nDt9EA=="
    assert sig["who"]["identifier"]["value"] == "a1b2c3d4e5f60718"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"medicines": [], "ayush": []}, "at least one medicine"),
        ({"practitioner": {"id": DOCTOR_ID, "name": "Dr X"}}, "registration_council"),
        ({"patient": {"id": PATIENT_ID}}, "patient: missing name"),
        ({"diagnoses": [{"code": "XYZ"}]}, "icd10 or snomed"),
        ({"diagnoses": [{}]}, "diagnoses\\[0\\]"),
        ({"issued_at": datetime(2026, 11, 20)}, "time zone"),
    ],
)
def test_bad_input_is_reported_by_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PrescriptionRecordError, match=message):
        build_prescription_record(**{**inputs(), **change})


def test_validate_bundle_lists_paths_of_structural_errors() -> None:
    b = copy.deepcopy(bundle())
    b["entry"][1]["resource"]["gender"] = 5
    del b["entry"][4]["resource"]["status"]  # the Encounter
    b["entry"][5]["resource"]["status"] = "active"  # Condition has no `status`
    with pytest.raises(BundleInvalid) as caught:
        validate_bundle(b)
    paths = [p.split(":")[0] for p in caught.value.problems]
    assert paths == ["entry[1].resource.gender", "entry[4].resource.status", "entry[5].resource.status"]
    assert "entry[4].resource.status" in str(caught.value)


def test_validate_bundle_reports_abdm_rules() -> None:
    b = copy.deepcopy(bundle())
    b["meta"].pop("versionId")
    b["entry"][0]["resource"]["type"]["coding"][0]["code"] = "371530004"
    b["entry"][0]["resource"]["section"][0]["entry"][0]["type"] = "Condition"
    b["entry"][0]["resource"]["section"][0]["entry"][1]["reference"] = "urn:uuid:elsewhere"
    with pytest.raises(BundleInvalid) as caught:
        validate_bundle(b)
    assert caught.value.problems == (
        "meta.versionId: required by the ABDM DocumentBundle profile",
        "entry[0].resource.type.coding: must be exactly SNOMED 440545006",
        "entry[0].resource.section[0].entry[0].type: must be MedicationRequest or Binary",
        "entry[0].resource.section[0].entry[1].reference: does not resolve inside the bundle",
    )
