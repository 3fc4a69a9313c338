"""The peer's gen.js documents as our records: patients (`to_patient_fields`) and encounters (`to_encounter`).

Used by ``bench/sync_bench.py --records-mix peer``: the first N documents of gen.js's stream (one patient,
then two encounters of that patient) become N records of ours, in the same order.

Encounter mapping (gen.js ``type: "encounter"`` → `shared.records.encounter.EncounterCreate`, then completed):

* ``patient_id``: our id of that patient (gen.js ids are mapped to our UUIDv7s as the patients are read);
  ``id``: a new UUIDv7. ``practitioner_id`` has no field: the encounter's doctor is the one signed in on the
  writing PC (the service takes the signed-in doctor). ``clinic_id`` is the PC's clinic.
* ``encounter_type``: every gen.js ``visit_type`` (new, follow_up, walk_in) is an outpatient visit, ``opd``;
  whether it was a first or a follow-up visit has no field of ours and is not kept.
* ``start_time``: ``created_at`` (a full time; ``encounter_date`` is its date).
* ``chief_complaint``; ``subjective``: one text — "<complaint> for <n> day(s). <history> Allergies: <..>."
* ``objective.vitals``: ``bp`` "<systolic>/<diastolic>", ``pulse``, ``respiratory_rate``, ``temperature`` with
  unit C, ``spo2``, ``weight_kg``, ``height_cm`` (the names and units `Vitals` takes; it derives systolic,
  diastolic, °C and BMI); ``objective.examination``: the examination text.
* ``assessment.primary_diagnosis``: the SNOMED CT display as the condition text, with the SNOMED code when
  our shipped condition vocabulary knows it (2 of gen.js's 10 codes: hypertension 38341003, type 2 diabetes
  44054006); for the other 8 the code is left out (`Diagnosis` refuses a code outside the vocabulary).
  gen.js's diagnosis ``type: provisional`` has no field: ``assessment.notes`` starts with "Provisional
  diagnosis." followed by gen.js's notes.
* ``plan.medications``: gen.js's medication objects as they are (drug, dose, frequency, duration_days, route,
  instructions; `Plan` takes structured entries). They are not a prescription of ours (a signed Rx is a record
  kind of its own, checked against the interaction knowledge): the Rx pad shows only typed text lines, and
  completing checks only those against the saved prescription. ``plan.investigations``: the tests, one line
  each. ``plan.followup``: "Review in <n> days. Advice: <advice>" (our plan has no advice field).
* gen.js's ``created_at``/``updated_at``/``created_by_device``/``schema_version`` have no field: ours are set by
  the service and the sync stamps.
"""

from __future__ import annotations

import functools
from typing import Any

from shared.ids import luhn_check_digit, uuid7
from shared.records.encounter import SoapNote, condition_vocabulary


def to_patient_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """One gen.js patient document as our patient fields (what `PatientService.register` takes).

    * ``mobile`` gets the ``+91`` our records store; ``abha_number`` loses its dashes and its last digit
      becomes the Luhn check digit of the first 13 (gen.js draws 14 random digits; we refuse a wrong check
      digit, as ABDM does);
    * ``address`` keeps district, state and PIN code; ``line1``, ``line2`` and the village/town make our one
      address line;
    * ``id`` is a new UUIDv7 (gen.js ids are random v4-shaped; our records are time-ordered v7).
    """
    digits = doc["abha_number"].replace("-", "")[:13]
    address = doc["address"]
    return {
        "id": str(uuid7()),
        "name": doc["name"],
        "gender": doc["gender"],
        "year_of_birth": doc["year_of_birth"],
        "mobile": "+91" + doc["mobile"],
        "abha_number": digits + str(luhn_check_digit(digits)),
        "abha_address": doc["abha_address"],
        "address": {
            "line": f"{address['line1']}, {address['line2']}, {address['village_town']}",
            "district": address["district"],
            "state": address["state"],
            "pincode": address["pincode"],
        },
    }


@functools.lru_cache(maxsize=64)
def known_snomed(code: str) -> bool:
    """Whether our shipped condition vocabulary knows this SNOMED CT concept id (so `Diagnosis` takes it)."""
    return bool(condition_vocabulary().resolve(f"SNOMED:{code}").ids)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def to_encounter(doc: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """One gen.js encounter document as `EncounterCreate` fields (JSON), for the patient of ours ``patient_id``."""
    soap = doc["soap"]
    subj, obj, assess, plan = soap["subjective"], soap["objective"], soap["assessment"], soap["plan"]
    v = obj["vitals"]
    diagnosis = assess["diagnoses"][0]
    primary: dict[str, Any] = {"condition": diagnosis["display"]}
    if diagnosis.get("system") == "http://snomed.info/sct" and known_snomed(diagnosis["code"]):
        primary |= {"code": diagnosis["code"], "system": "snomed"}
    notes = assess["notes"]
    if diagnosis.get("type") == "provisional":
        notes = f"Provisional diagnosis. {notes}"
    note = {
        "subjective": f"{subj['chief_complaint']} for {_days(subj['duration_days'])}. {subj['history']}"
        f" Allergies: {subj['allergies']}.",
        "objective": {
            "vitals": {
                "bp": f"{v['bp_systolic']}/{v['bp_diastolic']}",
                "pulse": v["pulse"],
                "respiratory_rate": v["resp_rate"],
                "temperature": v["temp_c"],
                "temperature_unit": "C",
                "spo2": v["spo2"],
                "weight_kg": v["weight_kg"],
                "height_cm": v["height_cm"],
            },
            "examination": obj["examination"],
        },
        "assessment": {
            "primary_diagnosis": primary,
            "secondary_diagnoses": [{"condition": d["display"]} for d in assess["diagnoses"][1:]],
            "notes": notes,
        },
        "plan": {
            "medications": [dict(m) for m in plan["medications"]],
            "investigations": list(plan["investigations"]),
            "followup": f"Review in {_days(plan['follow_up_in_days'])}. Advice: {plan['advice']}",
        },
    }
    if not note["assessment"]["secondary_diagnoses"]:
        del note["assessment"]["secondary_diagnoses"]
    return {
        "id": str(uuid7()),
        "patient_id": patient_id,
        "encounter_type": "opd",
        "start_time": doc["created_at"],
        "chief_complaint": subj["chief_complaint"],
        "soap_note": note,
    }


def stored_note(note: dict[str, Any]) -> dict[str, Any]:
    """The note as the store and the sync carry it (validated; derived vitals added, empty parts left out)."""
    return SoapNote.model_validate(note).model_dump(mode="json", exclude_none=True)
