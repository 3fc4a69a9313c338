"""Every endpoint answers malformed input with a 4xx problem+json and leaves the database unchanged."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from shared.ids import uuid7
from sync_server.settings import Settings
from tests.factories import make_patient
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn

GOOD_PATIENT = {"name": "Rajesh Kumar", "gender": "M", "year_of_birth": 1985}
BAD_BODIES: list[tuple[str, bytes]] = [
    ("malformed json", b"{not json"),
    ("truncated json", b'{"name": "Raj'),
    ("non-utf8", b'{"name": "\xff\xfe\xfa"}'),
    ("json array", b"[1, 2, 3]"),
    ("json string", b'"hello"'),
    ("null", b"null"),
    ("empty", b""),
    ("wrong types", json.dumps({"name": 12, "gender": ["M"], "year_of_birth": "old"}).encode()),
    ("huge int", json.dumps({**GOOD_PATIENT, "year_of_birth": 10**30}).encode()),
    ("over-long string", json.dumps({**GOOD_PATIENT, "name": "a" * 10_000}).encode()),
    ("unknown field", json.dumps({**GOOD_PATIENT, "is_admin": True}).encode()),
    ("sql-ish", json.dumps({**GOOD_PATIENT, "gender": "M'; DROP TABLE patients; --"}).encode()),
    ("nul byte", json.dumps({**GOOD_PATIENT, "name": "Raj\u0000esh"}).encode()),
    ("lone surrogate", b'{"name": "\\ud800", "gender": "M", "year_of_birth": 1985}'),
    ("deep nesting", b'{"address": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
]


def counts(dsn: str) -> tuple[int, int, int]:
    row = pg.query(
        dsn,
        "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM audit_logs),"
        " (SELECT max(version) FROM patients)",
    )[0]
    return row[0], row[1], row[2] or 0


def assert_problem(r: object, *, lo: int = 400, hi: int = 499) -> None:
    assert lo <= r.status_code <= hi, (r.status_code, r.text)  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert {"type", "title", "status", "code"} <= body.keys()


@pytest.fixture
def existing(api: TestClient, doctor: SignedIn) -> str:
    r = api.post("/api/v1/patients", json=make_patient(), headers=doctor.headers)
    assert r.status_code == 201
    return str(r.json()["id"])


@pytest.mark.parametrize(("label", "raw"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_on_every_write_endpoint(
    api: TestClient, doctor: SignedIn, settings: Settings, existing: str, label: str, raw: bytes
) -> None:
    before = counts(settings.database_url)
    endpoints = [
        ("POST", "/api/v1/patients"),
        ("PATCH", f"/api/v1/patients/{existing}"),
        ("POST", "/api/v1/auth/doctor/init"),
        ("POST", "/api/v1/auth/doctor/verify"),
        ("POST", "/api/v1/auth/refresh"),
    ]
    for method, path in endpoints:
        r = api.request(method, path, content=raw, headers={**doctor.headers, "Content-Type": "application/json"})
        assert_problem(r)
    assert counts(settings.database_url) == before


def test_422_lists_each_field(api: TestClient, doctor: SignedIn) -> None:
    r = api.post("/api/v1/patients", json={"name": 12, "gender": "Q", "extra": 1}, headers=doctor.headers)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "gender", "year_of_birth", "extra"} <= fields


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/patients/not-a-uuid",
        "/api/v1/patients/1; DROP TABLE patients",
        "/api/v1/patients/%00",
        "/api/v1/patients?limit=0",
        "/api/v1/patients?limit=100000",
        "/api/v1/patients?limit=abc",
        "/api/v1/patients?q=" + "x" * 500,
        "/api/v1/patients?cursor=%ff%fe",
    ],
)
def test_bad_paths_and_queries(api: TestClient, doctor: SignedIn, path: str) -> None:
    assert_problem(api.get(path, headers=doctor.headers))


def test_unknown_route_and_wrong_method_are_problems(api: TestClient, doctor: SignedIn) -> None:
    assert_problem(api.get("/api/v1/nothing-here", headers=doctor.headers))
    assert_problem(api.put("/api/v1/patients", json={}, headers=doctor.headers))


def test_body_over_the_limit_is_413(api: TestClient, doctor: SignedIn) -> None:
    r = api.post(
        "/api/v1/patients",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={**doctor.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")


def test_patch_unknown_patient_is_404_problem(api: TestClient, doctor: SignedIn) -> None:
    assert_problem(api.patch(f"/api/v1/patients/{uuid7()}", json={"name": "X"}, headers=doctor.headers))


def test_wrong_otp_shapes(api: TestClient) -> None:
    for otp in ["", "abc", "1" * 50, "12 34", "١٢٣٤٥٦"]:
        r = api.post("/api/v1/auth/doctor/verify", json={"txn_id": str(uuid7()), "otp": otp})
        assert r.status_code == 422, otp
    r = api.post("/api/v1/auth/doctor/verify", json={"txn_id": str(uuid7()), "otp": "123456"})
    assert r.status_code == 404 and r.json()["code"] == "auth.txn_unknown"
