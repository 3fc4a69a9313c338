"""Prescribing endpoints over the API (the knowledge itself is tested in tests/shared/rx)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.sync_server.conftest import SignedIn

SEED_BODY = {
    "medications": [
        {"generic_name": "METFORMIN", "strength": "1000mg", "frequency": "Twice daily", "duration_days": 30}
    ],
    "ayush_medications": [{"name": "Triphala Churna", "dose": "5g", "frequency": "Twice daily", "duration_days": 30}],
    "patient_conditions": ["type_2_diabetes", "hypertension"],
}


def test_check_interactions_seed_body(api: TestClient, doctor: SignedIn) -> None:
    r = api.post("/api/v1/prescriptions/check-interactions", json=SEED_BODY, headers=doctor.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"interactions", "contraindications", "safety_score", "unknown_items"} <= body.keys()
    assert 0 <= body["safety_score"] <= 100


def test_warfarin_plus_aspirin_is_major(api: TestClient, doctor: SignedIn) -> None:
    body = {
        **SEED_BODY,
        "medications": [
            *SEED_BODY["medications"],
            {"generic_name": "WARFARIN", "strength": "5mg", "frequency": "Once daily", "duration_days": 30},
            {"generic_name": "ASPIRIN", "strength": "75mg", "frequency": "Once daily", "duration_days": 30},
        ],
    }
    r = api.post("/api/v1/prescriptions/check-interactions", json=body, headers=doctor.headers).json()
    severities = {f["severity"] for f in r["interactions"]}
    assert severities & {"major", "contraindicated"}
    finding = next(f for f in r["interactions"] if f["severity"] in ("major", "contraindicated"))
    assert finding["source"] and finding["rule_id"]


def test_unknown_names_are_reported_not_ignored(api: TestClient, doctor: SignedIn) -> None:
    body = {
        "medications": [{"generic_name": "NOTADRUGXYZ"}],
        "ayush_medications": [],
        "patient_conditions": ["zzz_condition"],
    }
    r = api.post("/api/v1/prescriptions/check-interactions", json=body, headers=doctor.headers)
    assert r.status_code == 200, r.text
    unknown = " ".join(str(u) for u in r.json()["unknown_items"]).lower()
    assert "notadrugxyz" in unknown and "zzz_condition" in unknown


def test_check_interactions_needs_sign_in_and_valid_body(api: TestClient, doctor: SignedIn) -> None:
    assert api.post("/api/v1/prescriptions/check-interactions", json=SEED_BODY).status_code == 401
    r = api.post("/api/v1/prescriptions/check-interactions", json={**SEED_BODY, "extra": 1}, headers=doctor.headers)
    assert r.status_code == 422


def test_expand_shorthand_seed_example(api: TestClient, doctor: SignedIn) -> None:
    r = api.post(
        "/api/v1/prescriptions/expand-shorthand", json={"shorthand": "Metf 1000 bd 30d"}, headers=doctor.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generic_name"] == "METFORMIN" and body["quantity"] == 60 and body["unresolved"] == []
    for key in (
        "strength",
        "dosage_form",
        "route",
        "frequency",
        "duration_days",
        "instructions",
        "rxnorm_code",
        "timing",
        "defaulted",
    ):
        assert key in body


def test_expand_shorthand_adds_the_pack_count(api: TestClient, doctor: SignedIn) -> None:
    r = api.post(
        "/api/v1/prescriptions/expand-shorthand",
        json={"shorthand": "pcm susp 250 5ml tds x 5d"},
        headers=doctor.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["quantity"] == 2 and body["unresolved"] == []
    assert body["dispense"] == {
        "packs": 2, "pack_size": 60, "pack_name": "bottle", "unit": "mL", "total_units": 75,
        "note": "75 mL → 2 bottles of 60 mL, rounded up to whole bottles (45 mL over)",
    }  # fmt: skip
    schema = api.get("/api/openapi.json").json()["components"]["schemas"]
    assert "dispense" in schema["ExpandedLine"]["properties"] and "dispense" not in schema["ExpandedLine"]["required"]


def test_expand_shorthand_never_guesses(api: TestClient, doctor: SignedIn) -> None:
    r = api.post("/api/v1/prescriptions/expand-shorthand", json={"shorthand": "zzqx 10 bd 5d"}, headers=doctor.headers)
    assert r.status_code == 200
    assert r.json()["generic_name"] is None and r.json()["unresolved"]
    too_long = api.post(
        "/api/v1/prescriptions/expand-shorthand", json={"shorthand": "x" * 3000}, headers=doctor.headers
    )
    assert too_long.status_code == 422
