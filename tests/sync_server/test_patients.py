"""Patient API: create, read, update, search; audit rows in the same transaction; clinic scoping."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from shared.ids import uuid7
from sync_server.settings import Settings
from tests.factories import make_patient, valid_abha
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn

SEED = {
    "name": "Rajesh Kumar",
    "mobile": "+919876543210",
    "gender": "M",
    "year_of_birth": 1985,
    "abha_number": "91-3772-0586-4665",
    "abha_address": "rajesh.kumar@abdm",
}


def create(api: TestClient, who: SignedIn, **overrides: object) -> dict:
    r = api.post("/api/v1/patients", json=make_patient(**overrides), headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_seed_example_with_bad_check_digit_is_refused(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    r = api.post("/api/v1/patients", json={**SEED, "abha_number": "12-3456-7890-1234"}, headers=doctor.headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["errors"] == [
        {"field": "abha_number", "code": "abha.check_digit", "message": body["errors"][0]["message"]}
    ]
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM patients") == 0


def test_create_read_update_round_trip(api: TestClient, doctor: SignedIn) -> None:
    r = api.post("/api/v1/patients", json=SEED, headers=doctor.headers)
    assert r.status_code == 201
    p = r.json()
    assert uuid.UUID(p["id"]).version == 7
    assert p["abha_number"] == "91377205864665"  # stored normalised
    assert p["clinic_id"] == doctor.user["clinic"]["id"]
    assert p["version"] == 1
    got = api.get(f"/api/v1/patients/{p['id']}", headers=doctor.headers)
    assert got.status_code == 200 and got.json() == p
    upd = api.patch(
        f"/api/v1/patients/{p['id']}",
        json={
            "mobile": "9812345678",
            "address": {"district": "Pune", "state": "Maharashtra", "pincode": "411001"},
        },
        headers=doctor.headers,
    )
    assert upd.status_code == 200
    assert upd.json()["mobile"] == "+919812345678"
    assert upd.json()["address"] == {
        "line": None,
        "district": "Pune",
        "state": "Maharashtra",
        "pincode": "411001",
    }
    assert upd.json()["version"] == 2
    assert upd.json()["name"] == "Rajesh Kumar"  # untouched fields stay
    cleared = api.patch(f"/api/v1/patients/{p['id']}", json={"address": None}, headers=doctor.headers)
    assert cleared.json()["address"] is None and cleared.json()["version"] == 3


def test_client_generated_uuid7_is_kept_and_replay_is_a_conflict(api: TestClient, doctor: SignedIn) -> None:
    pid = str(uuid7())
    assert create(api, doctor, id=pid)["id"] == pid
    again = api.post("/api/v1/patients", json=make_patient(id=pid), headers=doctor.headers)
    assert again.status_code == 409


def test_duplicate_abha_in_same_clinic_is_409_with_existing_id(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn
) -> None:
    abha = valid_abha()
    first = create(api, doctor, abha_number=abha)
    r = api.post("/api/v1/patients", json=make_patient(abha_number=abha), headers=doctor.headers)
    assert r.status_code == 409
    assert r.json()["existing_id"] == first["id"]
    # Another clinic may register the same person: clinics do not see each other's registers.
    assert (
        api.post(
            "/api/v1/patients", json=make_patient(abha_number=abha), headers=other_clinic_doctor.headers
        ).status_code
        == 201
    )


def test_update_to_an_abha_taken_by_another_patient_is_409(api: TestClient, doctor: SignedIn) -> None:
    abha = valid_abha()
    create(api, doctor, abha_number=abha)
    second = create(api, doctor)
    r = api.patch(f"/api/v1/patients/{second['id']}", json={"abha_number": abha}, headers=doctor.headers)
    assert r.status_code == 409


def test_update_revalidates_whole_record(api: TestClient, doctor: SignedIn) -> None:
    p = create(api, doctor, year_of_birth=1990, date_of_birth="1990-05-01")
    r = api.patch(f"/api/v1/patients/{p['id']}", json={"year_of_birth": 1991}, headers=doctor.headers)
    assert r.status_code == 422
    assert api.get(f"/api/v1/patients/{p['id']}", headers=doctor.headers).json()["year_of_birth"] == 1990


def test_every_patient_access_is_audited_in_the_same_transaction(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    p = create(api, doctor)
    api.get(f"/api/v1/patients/{p['id']}", headers=doctor.headers)
    api.patch(f"/api/v1/patients/{p['id']}", json={"name": "New Name"}, headers=doctor.headers)
    api.get("/api/v1/patients?q=new", headers={**doctor.headers, "User-Agent": "IntegMed-Desktop/0.1"})
    rows = pg.query(settings.database_url, "SELECT * FROM audit_logs WHERE entity_type = 'patient' ORDER BY seq")
    assert [r["action"] for r in rows] == [
        "patient.create",
        "patient.read",
        "patient.update",
        "patient.search",
    ]
    assert all(str(r["actor_id"]) == doctor.user["id"] for r in rows)
    assert all(str(r["clinic_id"]) == doctor.user["clinic"]["id"] for r in rows)
    assert rows[0]["entity_id"] == p["id"] and rows[0]["client_ip"] == "testclient"
    assert rows[3]["user_agent"] == "IntegMed-Desktop/0.1"
    assert '"fields": ["name"]' in rows[2]["details"]


def test_failed_write_leaves_no_audit_row(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    before = pg.scalar(settings.database_url, "SELECT count(*) FROM audit_logs")
    api.post("/api/v1/patients", json=make_patient(gender="Q"), headers=doctor.headers)
    api.get(f"/api/v1/patients/{uuid7()}", headers=doctor.headers)
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM audit_logs") == before


def test_audit_log_is_append_only(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    create(api, doctor)
    with pytest.raises(Exception, match="append-only"):
        pg.query(settings.database_url, "UPDATE audit_logs SET action = 'x'")
    with pytest.raises(Exception, match="append-only"):
        pg.query(settings.database_url, "DELETE FROM audit_logs")


# ---- search -------------------------------------------------------------------------------------


@pytest.fixture
def register(api: TestClient, doctor: SignedIn) -> dict[str, dict]:
    people = {
        "rajesh": make_patient(
            name="Rajesh Kumar",
            mobile="+919876543210",
            abha_number="91-3772-0586-4665",
            abha_address="rajesh.kumar@abdm",
        ),
        "rajeshwari": make_patient(name="Rajeshwari Iyer", mobile="+919811111111"),
        "suresh": make_patient(name="Suresh Raj Patel", mobile="+919822222222"),
        "radha": make_patient(name="राधा कुमारी", mobile="+919833333333"),
        "priya": make_patient(name="Priyanka Chopra", mobile="+919844444444", abha_address="priya@sbx"),
    }
    out = {}
    for key, body in people.items():
        r = api.post("/api/v1/patients", json=body, headers=doctor.headers)
        assert r.status_code == 201, r.text
        out[key] = r.json()
    return out


def names(api: TestClient, who: SignedIn, q: str) -> list[str]:
    r = api.get("/api/v1/patients", params={"q": q}, headers=who.headers)
    assert r.status_code == 200, r.text
    return [p["name"] for p in r.json()["items"]]


def test_search_by_name_prefix_ranks_prefix_first(api: TestClient, doctor: SignedIn, register: dict) -> None:
    # Both names start with the term (tier 1, newest registration first); "Suresh Raj" only has a later word.
    assert set(names(api, doctor, "rajesh")[:2]) == {"Rajesh Kumar", "Rajeshwari Iyer"}
    assert names(api, doctor, "raj")[-1] == "Suresh Raj Patel"
    assert names(api, doctor, "RAJESHW")[0] == "Rajeshwari Iyer"


def test_search_by_surname_and_infix(api: TestClient, doctor: SignedIn, register: dict) -> None:
    assert names(api, doctor, "patel") == ["Suresh Raj Patel"]
    assert "Priyanka Chopra" in names(api, doctor, "chopra")


def test_search_fuzzy_tolerates_a_typo(api: TestClient, doctor: SignedIn, register: dict) -> None:
    assert "Priyanka Chopra" in names(api, doctor, "priyanak")


def test_search_in_devanagari(api: TestClient, doctor: SignedIn, register: dict) -> None:
    assert names(api, doctor, "राधा") == ["राधा कुमारी"]
    assert names(api, doctor, "कुमारी") == ["राधा कुमारी"]


def test_search_by_mobile_abha_number_and_address(api: TestClient, doctor: SignedIn, register: dict) -> None:
    assert names(api, doctor, "98765 43210") == ["Rajesh Kumar"]
    assert names(api, doctor, "+919822222222") == ["Suresh Raj Patel"]
    assert names(api, doctor, "3333") == ["राधा कुमारी"]
    assert names(api, doctor, "91-3772-0586-4665") == ["Rajesh Kumar"]
    assert names(api, doctor, "91377205864665") == ["Rajesh Kumar"]
    assert names(api, doctor, "PRIYA@SBX") == ["Priyanka Chopra"]


def test_search_pages_with_cursor_without_repeats(api: TestClient, doctor: SignedIn) -> None:
    for i in range(7):
        create(api, doctor, name=f"Anita Sharma {i}")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"q": "anita", "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/patients", params=params, headers=doctor.headers).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len(set(seen)) == 7
    everyone = api.get("/api/v1/patients", params={"limit": 100}, headers=doctor.headers).json()
    assert everyone["next_cursor"] is None and len(everyone["items"]) == 7


def test_bad_cursor_is_a_4xx(api: TestClient, doctor: SignedIn) -> None:
    r = api.get("/api/v1/patients", params={"cursor": "not-a-cursor"}, headers=doctor.headers)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")


def test_sql_like_search_terms_are_just_text(api: TestClient, doctor: SignedIn, register: dict) -> None:
    assert names(api, doctor, "%") == []
    assert names(api, doctor, "' OR 1=1 --") == []
    assert names(api, doctor, "_") == []


# ---- clinic isolation: every endpoint --------------------------------------------------------


def test_other_clinic_can_never_read_or_change(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn, settings: Settings
) -> None:
    mine = create(api, doctor, name="Kamala Devi", abha_number=valid_abha())
    them = other_clinic_doctor.headers
    assert api.get(f"/api/v1/patients/{mine['id']}", headers=them).status_code == 404
    r = api.patch(f"/api/v1/patients/{mine['id']}", json={"name": "Hijacked"}, headers=them)
    assert r.status_code == 404
    assert names(api, other_clinic_doctor, "kamala") == []
    assert names(api, other_clinic_doctor, mine["abha_number"]) == []
    assert names(api, other_clinic_doctor, mine["mobile"]) == []
    assert api.get("/api/v1/patients", headers=them).json()["items"] == []
    # A client-chosen id that exists in another clinic cannot be used to overwrite it.
    r = api.post("/api/v1/patients", json=make_patient(id=mine["id"], name="Overwrite"), headers=them)
    assert r.status_code == 409
    stored = pg.query(
        settings.database_url, "SELECT name, clinic_id FROM patients WHERE id = $1", uuid.UUID(mine["id"])
    )
    assert stored[0]["name"] == "Kamala Devi" and str(stored[0]["clinic_id"]) == doctor.user["clinic"]["id"]


def test_success_is_answered_only_after_the_commit(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    """The request's transaction commits before the response is sent (a request-scoped dependency would
    commit after it). A constraint checked only at COMMIT proves the order: the client must not get a 201
    for a write that then failed to commit."""
    pg.query(
        settings.database_url,
        """
        CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.name = 'Fails At Commit' THEN RAISE EXCEPTION 'refused at commit'; END IF;
            RETURN NULL;
        END $$
        """,
    )
    pg.query(
        settings.database_url,
        """
        CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON patients
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
        """,
    )
    status = api.post("/api/v1/patients", json=make_patient(name="Fails At Commit"), headers=doctor.headers).status_code
    assert status != 201
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM patients") == 0


def test_search_tiers_and_typos(api: TestClient, doctor: SignedIn) -> None:
    for name in ["Pradeep Gupta", "Kumari Devi", "Anil Kumar", "Mary Kumar", "Shah Rukh", "Ramesh Sharma"]:
        create(api, doctor, name=name)
    assert names(api, doctor, "pradip gupta") == ["Pradeep Gupta"]  # one misspelt word of two
    assert names(api, doctor, "mary kumar") == ["Mary Kumar"]  # whole-name prefix, not every Kumar
    assert names(api, doctor, "kum")[:1] == ["Kumari Devi"]  # whole-name prefix before later-word prefix
    assert set(names(api, doctor, "kumar")) >= {"Kumari Devi", "Anil Kumar", "Mary Kumar"}
    assert names(api, doctor, "shah")[0] == "Shah Rukh"  # exact word before look-alikes such as Sharma


def test_mistyped_abha_number_in_search_is_a_clear_422(api: TestClient, doctor: SignedIn) -> None:
    r = api.get("/api/v1/patients", params={"q": "12-3456-7890-1234"}, headers=doctor.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "q"
