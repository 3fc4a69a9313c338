"""Sync endpoints: enrolment, idempotent push with per-change results, paged pull, merge history, scoping."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, encode, system_wall_ms
from shared.ids import uuid7
from shared.records.patient import PatientCreate
from sync_server.settings import Settings
from tests.factories import make_patient
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn, sign_in


class Device:
    """A test stand-in for a clinic PC talking the protocol directly (the real client is tested in e2e)."""

    def __init__(self, api: TestClient, who: SignedIn, name: str = "Reception PC") -> None:
        r = api.post("/api/v1/devices", json={"name": name}, headers=who.headers)
        assert r.status_code == 201, r.text
        self.api, self.id, self.token = api, r.json()["device_id"], r.json()["device_token"]
        self.clock = HLC(self.id.replace("-", ""))
        t = api.post("/api/v1/auth/device/token", json={"device_id": self.id, "device_token": self.token})
        assert t.status_code == 200, t.text
        self.headers = {"Authorization": f"Bearer {t.json()['access_token']}"}

    def change(self, pid: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
        stamp = encode(self.clock.now())
        return {
            "kind": "patient",
            "id": str(pid),
            "op": "upsert",
            "hlc": stamp,
            "fields": fields,
            "field_hlcs": dict.fromkeys(fields, stamp),
        }

    def push(self, changes: list[dict[str, Any]], batch_id: str | None = None, **extra: Any) -> Any:
        body = {
            "batch_id": batch_id or str(uuid7()),
            "device_id": self.id,
            "schema_version": RECORD_SCHEMA_VERSION,
            "protocol_version": PROTOCOL_VERSION,
            "changes": changes,
            **extra,
        }
        return self.api.post("/api/v1/sync/push", json=body, headers=self.headers)

    def pull_all(self, cursor: str | None = None, limit: int = 1000) -> tuple[list[dict[str, Any]], str]:
        out: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            r = self.api.get("/api/v1/sync/pull", params=params, headers=self.headers)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["changes"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return out, cursor


def new_patient(**overrides: Any) -> dict[str, Any]:
    return PatientCreate.model_validate(make_patient(**overrides)).model_dump(mode="json", exclude={"id"})


def test_push_create_then_pull_on_another_pc(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid = uuid7()
    r = a.push([a.change(pid, new_patient(name="Meena Kumari"))])
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [
        {"kind": "patient", "id": str(pid), "status": "applied", "reason": None, "message": None, "server_version": 1}
    ]
    pulled, cursor = b.pull_all()
    assert [c["id"] for c in pulled] == [str(pid)]
    assert pulled[0]["fields"]["name"] == "Meena Kumari"
    assert pulled[0]["batch_id"] == r.json()["batch_id"]
    again, _ = b.pull_all(cursor)
    assert again == []
    # The API sees it too.
    assert api.get(f"/api/v1/patients/{pid}", headers=doctor.headers).json()["name"] == "Meena Kumari"


def test_replayed_batch_returns_same_results_and_writes_nothing(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a = Device(api, doctor)
    batch = str(uuid7())
    changes = [a.change(uuid7(), new_patient()) for _ in range(3)]
    first = a.push(changes, batch_id=batch).json()
    counts = pg.query(
        settings.database_url,
        "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM audit_logs), (SELECT max(seq) FROM change_feed)",
    )[0]
    second = a.push(changes, batch_id=batch).json()
    assert second == first
    assert (
        pg.query(
            settings.database_url,
            "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM audit_logs),"
            " (SELECT max(seq) FROM change_feed)",
        )[0]
        == counts
    )
    # The same changes in a new batch (reply lost, batch rebuilt) are no-ops too.
    third = a.push(list(reversed(changes))).json()
    assert {r["status"] for r in third["results"]} == {"applied"}
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM patients") == 3
    assert pg.scalar(settings.database_url, "SELECT max(version) FROM patients") == 1


def test_concurrent_edits_merge_per_field_and_keep_the_loser(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid = uuid7()
    a.push([a.change(pid, new_patient(name="Anil Verma", mobile="+919811100001"))])
    b.pull_all()
    b.clock.update(a.clock.now())  # B has seen A's clock through the pull
    old_edit = a.change(pid, {"mobile": "+919811100002", "name": "Anil K Verma"})  # A edits first (older stamp)
    new_edit = b.change(pid, {"mobile": "+919811100003"})  # B edits later (newer stamp)
    assert b.push([new_edit]).json()["results"][0]["status"] == "applied"
    r = a.push([old_edit]).json()["results"][0]
    assert r["status"] == "merged"  # name applied, mobile lost
    got = api.get(f"/api/v1/patients/{pid}", headers=doctor.headers).json()
    assert (got["name"], got["mobile"]) == ("Anil K Verma", "+919811100003")
    hist = api.get(f"/api/v1/patients/{pid}/history", headers=doctor.headers).json()
    lost = [h for h in hist if h["conflict"]]
    assert [(h["field"], h["value"]) for h in lost] == [("mobile", "+919811100002")]


def test_bad_change_is_rejected_alone(api: TestClient, doctor: SignedIn) -> None:
    a = Device(api, doctor)
    good, bad_pid = uuid7(), uuid7()
    partial = a.change(bad_pid, {"mobile": "+919800000000"})  # a new record without name/gender/year
    invalid = a.change(uuid7(), {**new_patient(), "mobile": "12345"})
    r = a.push([a.change(good, new_patient()), partial, invalid]).json()["results"]
    assert [x["status"] for x in r] == ["applied", "rejected", "rejected"]
    assert r[1]["reason"] == "invalid_record" and "name" in r[1]["message"]
    assert r[2]["reason"] == "invalid_record" and "mobile" in r[2]["message"]
    assert api.get(f"/api/v1/patients/{good}", headers=doctor.headers).status_code == 200


def test_edits_of_a_stored_patient_are_checked_field_by_field_and_as_a_whole(api: TestClient, doctor: SignedIn) -> None:
    """An edit keeping the year and date of birth is checked on the fields it changes; one touching them is
    checked as a whole record. Bad values are refused either way and leave the stored patient as it was."""
    a = Device(api, doctor)
    pid = uuid7()
    a.push([a.change(pid, new_patient(name="Meena Iyer", year_of_birth=1980, mobile="+919811100010"))])
    cases = [
        ({"mobile": "12345"}, "mobile"),  # invalid value, field-wise check
        ({"abha_number": "91-3772-0586-4665"}, "canonical"),  # valid but not canonical (dashes)
        ({"name": None}, "name"),  # a required field cannot be cleared
        ({"date_of_birth": "1979-05-01"}, "year"),  # whole-record rule: outside the year of birth
        ({"year_of_birth": 1979}, ""),  # fine alone (no date of birth stored)
    ]
    results = a.push([a.change(pid, fields) for fields, _ in cases]).json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 4 + ["applied"]
    for (fields, word), r in zip(cases[:4], results, strict=False):
        assert r["reason"] == "invalid_record" and word in r["message"].lower(), (fields, r)
    got = api.get(f"/api/v1/patients/{pid}", headers=doctor.headers).json()
    assert (got["mobile"], got["abha_number"], got["name"], got["date_of_birth"], got["year_of_birth"]) == (
        "+919811100010",
        None,
        "Meena Iyer",
        None,
        1979,
    )
    ok = a.push([a.change(pid, {"mobile": "+919811100011", "name": "Meena S Iyer"})]).json()["results"][0]
    assert ok["status"] == "applied"
    got = api.get(f"/api/v1/patients/{pid}", headers=doctor.headers).json()
    assert (got["mobile"], got["name"], got["version"]) == ("+919811100011", "Meena S Iyer", 3)


def test_stamp_from_the_future_is_rejected_with_clock_skew(api: TestClient, doctor: SignedIn) -> None:
    a = Device(api, doctor)
    fast = HLC(a.id.replace("-", ""), wall_clock=lambda: system_wall_ms() + 24 * 3600 * 1000)
    stamp = encode(fast.now())
    fields = new_patient()
    change = {
        "kind": "patient",
        "id": str(uuid7()),
        "op": "upsert",
        "hlc": stamp,
        "fields": fields,
        "field_hlcs": dict.fromkeys(fields, stamp),
    }
    res = a.push([change]).json()["results"][0]
    assert res["reason"] == "clock_skew" and "ahead" in res["message"]


def test_outdated_client_is_told_to_update(api: TestClient, doctor: SignedIn) -> None:
    a = Device(api, doctor)
    r = a.push([a.change(uuid7(), new_patient())], schema_version=RECORD_SCHEMA_VERSION, protocol_version=0)
    assert r.status_code == 422  # protocol_version must be >= 1
    r = a.push([a.change(uuid7(), new_patient())], schema_version=RECORD_SCHEMA_VERSION + 1)
    assert r.status_code == 409 and r.json()["code"] == "sync.server_outdated"
    r = api.get("/api/v1/sync/pull", headers={**a.headers, "X-IntegMed-Protocol": "0", "X-IntegMed-Schema": "1"})
    assert r.status_code == 426 and "Update IntegMed" in r.json()["detail"]


def test_other_clinic_device_cannot_touch_or_see(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn
) -> None:
    mine, theirs = Device(api, doctor), Device(api, other_clinic_doctor)
    pid = uuid7()
    mine.push([mine.change(pid, new_patient(name="Private Patient"))])
    res = theirs.push([theirs.change(pid, {"name": "Stolen"})]).json()["results"][0]
    assert res["reason"] == "not_in_scope"
    pulled, _ = theirs.pull_all()
    assert pulled == []
    assert api.get(f"/api/v1/patients/{pid}", headers=doctor.headers).json()["name"] == "Private Patient"


def test_api_edits_reach_devices_through_the_feed(api: TestClient, doctor: SignedIn) -> None:
    a = Device(api, doctor)
    p = api.post("/api/v1/patients", json=make_patient(name="Walk In"), headers=doctor.headers).json()
    api.patch(f"/api/v1/patients/{p['id']}", json={"name": "Walk In Renamed"}, headers=doctor.headers)
    pulled, _ = a.pull_all()
    assert [(c["id"], c["fields"]["name"]) for c in pulled] == [(p["id"], "Walk In Renamed")]
    assert pulled[0]["server_version"] == 2


def test_pull_pages_resume_from_cursor(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "A"), Device(api, doctor, "B")
    ids = [uuid7() for _ in range(25)]
    a.push([a.change(i, new_patient()) for i in ids])
    resp = api.get("/api/v1/sync/pull", params={"limit": 10}, headers=b.headers)
    assert resp.headers["x-integmed-remaining"] == "15"
    r = resp.json()
    assert len(r["changes"]) == 10 and r["has_more"] is True
    rest, _ = b.pull_all(r["next_cursor"], limit=10)
    assert [c["id"] for c in r["changes"] + rest] == [str(i) for i in ids]


def test_users_cannot_sync_and_devices_cannot_use_staff_endpoints(api: TestClient, doctor: SignedIn) -> None:
    a = Device(api, doctor)
    assert api.get("/api/v1/sync/pull", headers=doctor.headers).status_code == 403
    assert api.get("/api/v1/patients", headers=a.headers).status_code == 403


def test_revoked_device_is_refused(api: TestClient, doctor: SignedIn, sandbox_url: str) -> None:
    a = Device(api, doctor)
    admin = sign_in(api, sandbox_url, "+919840000003")
    assert api.delete(f"/api/v1/devices/{a.id}", headers=doctor.headers).status_code == 403  # doctors may not
    assert api.delete(f"/api/v1/devices/{a.id}", headers=admin.headers).status_code == 204
    assert api.get("/api/v1/sync/pull", headers=a.headers).status_code == 401
    r = api.post("/api/v1/auth/device/token", json={"device_id": a.id, "device_token": a.token})
    assert r.status_code == 401 and r.json()["code"] == "auth.device_invalid"


def test_device_cannot_push_as_another_device(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "A"), Device(api, doctor, "B")
    body_for_b = {
        "batch_id": str(uuid7()),
        "device_id": b.id,
        "schema_version": RECORD_SCHEMA_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "changes": [a.change(uuid7(), new_patient())],
    }
    assert api.post("/api/v1/sync/push", json=body_for_b, headers=a.headers).status_code == 403


# ---- cursor safety: a transaction that started first and commits last is never skipped --------------------


async def _late_commit_scenario(dsn: str, clinic_id: uuid.UUID) -> list[list[int]]:
    from sync_server.db import sync as sync_db

    a_conn, b_conn, reader = await asyncpg.connect(dsn), await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    seen: list[list[int]] = []

    async def read(after: int) -> list[int]:
        return [r["seq"] for r in await sync_db.feed_page(reader, clinic_id, after, 100)]

    try:
        pid_a, pid_b = uuid7(), uuid7()
        for conn, pid in ((a_conn, pid_a), (b_conn, pid_b)):
            await conn.execute(
                "INSERT INTO patients (id, clinic_id, name, gender, year_of_birth, hlc, field_hlcs) "
                "VALUES ($1, $2, 'X', 'M', 1980, '000000000001-0000-t', '{\"name\": \"000000000001-0000-t\"}')",
                pid,
                clinic_id,
            )
        # A starts first and writes its record; B starts later.
        txa = a_conn.transaction()
        await txa.start()
        await a_conn.execute("UPDATE patients SET name = 'A' WHERE id = $1", pid_a)
        txb = b_conn.transaction()
        await txb.start()
        await b_conn.execute("UPDATE patients SET name = 'B' WHERE id = $1", pid_b)
        # B reaches the feed first, takes the next seq and commits while A is still open.
        await sync_db.bump_feed(b_conn, clinic_id, "patient", [pid_b], None)
        await txb.commit()
        seen.append(await read(0))
        # A now bumps the feed (after B committed) and commits last.
        await sync_db.bump_feed(a_conn, clinic_id, "patient", [pid_a], None)
        seen.append(await read(0))  # A not committed yet: invisible
        await txa.commit()
        cursor = max(seen[0]) if seen[0] else 0
        seen.append(await read(cursor))  # a reader resuming from B's seq finds A
        # The other order: A takes its seq first and stays open; B must wait behind it (never get ahead).
        txa = a_conn.transaction()
        await txa.start()
        await sync_db.bump_feed(a_conn, clinic_id, "patient", [pid_a], None)
        txb = b_conn.transaction()
        await txb.start()
        b_task = asyncio.create_task(sync_db.bump_feed(b_conn, clinic_id, "patient", [pid_b], None))
        blocked = await _waits_on_lock(reader, b_conn.get_server_pid())
        assert not b_task.done()
        seen.append([int(blocked)])
        before = max(seen[2])
        await txa.commit()
        await b_task
        await txb.commit()
        seen.append(await read(before))
        return seen
    finally:
        for conn in (a_conn, b_conn, reader):
            await conn.close()


async def _waits_on_lock(observer: asyncpg.Connection, pid: int) -> bool:
    """Poll pg_stat_activity until the backend is seen waiting on a lock (no fixed sleeps)."""
    for _ in range(500):
        event = await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
        if event == "Lock":
            return True
        await asyncio.sleep(0.01)
    return False


def test_cursor_never_skips_a_late_commit(settings: Settings, api: TestClient) -> None:
    clinic = uuid.UUID("019ab000-0000-7000-8000-000000000001")
    base = pg.scalar(settings.database_url, "SELECT coalesce(max(seq), 0) FROM change_feed")
    first, invisible, resumed, blocked, second = asyncio.run(_late_commit_scenario(settings.database_url, clinic))
    assert first == [base + 1]  # only B
    assert invisible == [base + 1]  # A's seq is in flight and not visible
    assert resumed == [base + 2]  # resuming after B's seq finds A: nothing skipped
    assert blocked == [1]  # B waited for A's commit instead of taking a later seq and committing first
    assert second == [base + 3, base + 4]  # A then B, in commit order


async def _bump_positions(
    dsn: str, clinic_id: uuid.UUID, ids: list[uuid.UUID], *, new: bool = False
) -> tuple[int, dict[uuid.UUID, int]]:
    from sync_server.db import sync as sync_db

    bump = sync_db.add_to_feed if new else sync_db.bump_feed

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            before = await conn.fetchval("SELECT last_seq FROM feed_counters WHERE clinic_id = $1", clinic_id) or 0
            await bump(conn, clinic_id, "patient", ids, None)
        rows = await conn.fetch("SELECT record_id, seq FROM change_feed WHERE record_id = ANY($1::uuid[])", ids)
        return int(before), {r["record_id"]: r["seq"] for r in rows}
    finally:
        await conn.close()


def test_feed_positions_follow_the_list_and_a_repeated_record_keeps_its_last(
    settings: Settings, api: TestClient
) -> None:
    clinic = uuid.UUID("019ab000-0000-7000-8000-000000000001")
    a, b, c = uuid7(), uuid7(), uuid7()
    before, seqs = asyncio.run(_bump_positions(settings.database_url, clinic, [b, a, c, a]))
    # 4 positions taken; a (listed 2nd and 4th) keeps the 4th, as one upsert per entry in list order would
    assert seqs == {b: before + 1, c: before + 3, a: before + 4}
    _, again = asyncio.run(_bump_positions(settings.database_url, clinic, [c]))
    assert again == {c: before + 5}  # moved to the next position, not duplicated
    # add_to_feed (records without an entry): the same positions; an id that has one after all (or is listed
    # twice) takes bump_feed's path in the same transaction, counter moved once
    d, e = uuid7(), uuid7()
    before, seqs = asyncio.run(_bump_positions(settings.database_url, clinic, [d, e], new=True))
    assert seqs == {d: before + 1, e: before + 2}
    before, seqs = asyncio.run(_bump_positions(settings.database_url, clinic, [e, a, b, a], new=True))
    assert seqs == {e: before + 1, b: before + 3, a: before + 4}
    assert (
        pg.scalar(settings.database_url, "SELECT last_seq FROM feed_counters WHERE clinic_id = $1", clinic)
        == before + 4
    )


def test_gzip_push_and_gzip_pull(api: TestClient, doctor: SignedIn) -> None:
    import gzip
    import json

    a = Device(api, doctor)
    body = {
        "batch_id": str(uuid7()),
        "device_id": a.id,
        "schema_version": RECORD_SCHEMA_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "changes": [a.change(uuid7(), new_patient()) for _ in range(50)],
    }
    raw = gzip.compress(json.dumps(body).encode())
    r = api.post(
        "/api/v1/sync/push",
        content=raw,
        headers={**a.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 50
    pulled = api.get("/api/v1/sync/pull", headers={**a.headers, "Accept-Encoding": "gzip"})
    assert pulled.headers["content-encoding"] == "gzip"
    assert len(pulled.json()["changes"]) == 50


@pytest.mark.parametrize("raw", [b"not gzip at all", b"\x1f\x8b\x08\x00garbage"])
def test_corrupt_gzip_is_a_400_and_nothing_is_written(
    api: TestClient, doctor: SignedIn, settings: Settings, raw: bytes
) -> None:
    a = Device(api, doctor)
    r = api.post(
        "/api/v1/sync/push",
        content=raw,
        headers={**a.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 400 and r.json()["code"] == "body.bad_encoding"
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM patients") == 0


def test_gzip_bomb_is_refused(api: TestClient, doctor: SignedIn) -> None:
    import gzip

    a = Device(api, doctor)
    bomb = gzip.compress(b" " * 50_000_000)
    r = api.post(
        "/api/v1/sync/push",
        content=bomb,
        headers={**a.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 413


def test_history_and_device_revocation_are_clinic_scoped(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn
) -> None:
    a = Device(api, doctor)
    pid = uuid7()
    a.push([a.change(pid, new_patient())])
    assert api.get(f"/api/v1/patients/{pid}/history", headers=doctor.headers).status_code == 200
    assert api.get(f"/api/v1/patients/{pid}/history", headers=other_clinic_doctor.headers).status_code == 404
    # A doctor of another clinic cannot enrol into, nor revoke, this clinic's PCs.
    assert api.delete(f"/api/v1/devices/{a.id}", headers=other_clinic_doctor.headers).status_code == 403


def test_revoked_pc_can_be_enrolled_again_by_a_doctor(
    api: TestClient, doctor: SignedIn, sandbox_url: str, other_clinic_doctor: SignedIn
) -> None:
    a = Device(api, doctor)
    admin = sign_in(api, sandbox_url, "+919840000003")
    api.delete(f"/api/v1/devices/{a.id}", headers=admin.headers)
    r = api.post("/api/v1/devices", json={"name": "Reception PC", "device_id": a.id}, headers=doctor.headers)
    assert r.status_code == 201
    assert r.json()["device_token"] != a.token
    old = api.post("/api/v1/auth/device/token", json={"device_id": a.id, "device_token": a.token})
    assert old.status_code == 401  # the old token stays dead
    new = api.post("/api/v1/auth/device/token", json={"device_id": a.id, "device_token": r.json()["device_token"]})
    assert new.status_code == 200
    # The same id cannot be taken over by another clinic.
    stolen = api.post("/api/v1/devices", json={"name": "X", "device_id": a.id}, headers=other_clinic_doctor.headers)
    assert stolen.status_code == 409


def test_openapi_documents_the_waiting_pull(api: TestClient) -> None:
    pull = api.get("/api/openapi.json").json()["paths"]["/api/v1/sync/pull"]["get"]
    wait = next(p for p in pull["parameters"] if p["name"] == "wait")
    assert wait["required"] is False and wait["schema"]["maximum"] == 25 and wait["schema"]["minimum"] == 0
    assert "503" in pull["responses"] and "LISTEN/NOTIFY" in pull["description"]


# ---- pull pages: built in chunks, the device checked in the page's own statement --------------------------


async def _pages(dsn: str, device_id: uuid.UUID, clinic_id: uuid.UUID, *, limit: int, chunk: int) -> list[Any]:
    from sync_server.services import sync as sync_service
    from sync_server.services.context import Actor, RequestMeta

    actor = Actor(device_id, device_id, clinic_id, "device", None, RequestMeta(None, None))
    conn = await asyncpg.connect(dsn)
    try:
        pages, cursor = [], None
        while True:
            page = await sync_service.pull(conn, actor, cursor=cursor, limit=limit, clock=HLC("srv-t"), chunk=chunk)
            body = page.response()
            assert (page.count, page.next_cursor, page.has_more) == (len(body.changes), body.next_cursor, body.has_more)
            pages.append(([c.model_dump(mode="json") for c in body.changes], body.next_cursor, body.has_more))
            cursor = page.next_cursor
            if not page.has_more:
                return pages
    finally:
        await conn.close()


def test_a_page_built_in_chunks_is_the_page(settings: Settings, api: TestClient, doctor: SignedIn) -> None:
    a = Device(api, doctor)
    base = pg.scalar(settings.database_url, "SELECT coalesce(max(seq), 0) FROM change_feed")
    assert a.push([a.change(uuid7(), new_patient(name=f"Chunked {i}")) for i in range(7)]).status_code == 200
    clinic = uuid.UUID(str(pg.scalar(settings.database_url, "SELECT clinic_id FROM devices WHERE id = $1", a.id)))
    device = uuid.UUID(a.id)
    whole = asyncio.run(_pages(settings.database_url, device, clinic, limit=1000, chunk=1000))
    changes = [c for page, _, _ in whole for c in page]
    assert len(changes) >= 7 and changes[-1]["seq"] > base
    for limit, chunk in ((5, 2), (3, 3), (7, 1), (1000, 2)):
        pages = asyncio.run(_pages(settings.database_url, device, clinic, limit=limit, chunk=chunk))
        assert [c for page, _, _ in pages for c in page] == changes, (limit, chunk)
        assert all(len(page) == limit and more for page, _, more in pages[:-1])  # full pages until the last
        assert [cursor for _, cursor, _ in pages] == [str(page[-1]["seq"]) for page, _, _ in pages]
    # Over HTTP the body is the same page (and the protocol's JSON).
    r = api.get("/api/v1/sync/pull", params={"limit": 5}, headers=a.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert int(r.headers["x-integmed-remaining"]) == len(changes) - 5
    assert r.json()["changes"] == changes[:5] and r.json()["has_more"] is True


async def _device_pages(dsn: str, device_id: uuid.UUID, clinic_id: uuid.UUID, after: int) -> list[Any]:
    from sync_server.db import sync as sync_db

    conn = await asyncpg.connect(dsn)
    try:
        return [
            rows if rows is None else [r["seq"] for r in rows]
            for rows in [
                await sync_db.device_feed_page(conn, device_id, clinic_id, after, 10),
                await sync_db.device_feed_page(conn, device_id, clinic_id, after + 10**9, 10),
                await sync_db.device_feed_page(conn, device_id, uuid7(), after, 10),  # another clinic's
                await sync_db.device_feed_page(conn, uuid7(), clinic_id, after, 10),  # not enrolled
            ]
        ]
    finally:
        await conn.close()


def test_the_page_read_checks_the_device(
    settings: Settings, api: TestClient, doctor: SignedIn, sandbox_url: str
) -> None:
    a = Device(api, doctor)
    base = pg.scalar(settings.database_url, "SELECT coalesce(max(seq), 0) FROM change_feed")
    assert a.push([a.change(uuid7(), new_patient()) for _ in range(2)]).status_code == 200
    clinic = uuid.UUID(str(pg.scalar(settings.database_url, "SELECT clinic_id FROM devices WHERE id = $1", a.id)))
    live, idle, other_clinic, unknown = asyncio.run(_device_pages(settings.database_url, uuid.UUID(a.id), clinic, base))
    assert live == [base + 1, base + 2] and idle == [] and other_clinic is None and unknown is None
    admin = sign_in(api, sandbox_url, "+919840000003")
    assert api.delete(f"/api/v1/devices/{a.id}", headers=admin.headers).status_code == 204
    assert asyncio.run(_device_pages(settings.database_url, uuid.UUID(a.id), clinic, base)) == [None] * 4
    r = api.get("/api/v1/sync/pull", params={"wait": 1}, headers=a.headers)  # a waiting pull too, at once
    assert r.status_code == 401 and r.json()["code"] == "auth.unauthenticated"
