"""A push batch is written set-wise, yet every result, version and flagged duplicate is what one change at a time
would give (`sync_server.services.sync`: runs of writes)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from fastapi.testclient import TestClient

from shared.ids import uuid7
from sync_server.db import duplicates as duplicates_db
from sync_server.db import sync as sync_db
from sync_server.settings import Settings
from tests.helpers import pg
from tests.sync_server.conftest import DEMO_CLINIC, SignedIn
from tests.sync_server.test_sync_api import Device, new_patient

ABHA_1, ABHA_2 = "91377205864665", "12345678901237"


def _results(response: Any) -> list[tuple[str, str, int | None]]:
    assert response.status_code == 200, response.text
    return [(r["id"], r["status"], r["server_version"]) for r in response.json()["results"]]


def _pairs(settings: Settings) -> set[tuple[str, str, str]]:
    rows = pg.query(settings.database_url, "SELECT patient_a, patient_b, reason FROM patient_duplicates")
    return {(str(r["patient_a"]), str(r["patient_b"]), r["reason"]) for r in rows}


def _pair(a: uuid.UUID, b: uuid.UUID, reason: str) -> tuple[str, str, str]:
    return (str(min(a, b)), str(max(a, b)), reason)


def test_a_patient_written_twice_in_a_batch_gets_each_version_in_turn(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a = Device(api, doctor)
    p, q = uuid7(), uuid7()
    create = a.change(p, new_patient(name="Meena Kumari", mobile="+919800000001"))
    edit = a.change(p, {"mobile": "+919800000002"})
    other = a.change(q, new_patient(name="Ravi Verma"))
    results = _results(a.push([create, edit, create, other]))
    # The replayed creation merges into what the edit left: its older mobile loses (kept in history).
    assert results == [(str(p), "applied", 1), (str(p), "applied", 2), (str(p), "merged", 2), (str(q), "applied", 1)]
    row = pg.query(settings.database_url, "SELECT mobile, version FROM patients WHERE id = $1", p)[0]
    assert (row["mobile"], row["version"]) == ("+919800000002", 2)
    pulled, _ = Device(api, doctor, "PC B").pull_all()
    assert [c["id"] for c in pulled] == [str(p), str(q)]
    assert pulled[0]["fields"]["mobile"] == "+919800000002"
    history = pg.query(settings.database_url, "SELECT field, lost FROM record_history WHERE record_id = $1", p)
    assert [(h["field"], h["lost"]) for h in history] == [("mobile", False), ("mobile", True)]


def test_look_alikes_arriving_in_one_batch_are_flagged_once(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a = Device(api, doctor)
    p, q, r = uuid7(), uuid7(), uuid7()
    a.push(
        [
            a.change(p, new_patient(name="Sita Ram", abha_number=ABHA_1, mobile="+919800000011")),
            a.change(q, new_patient(name="Sita  Ram", abha_number=ABHA_1, mobile="+919800000012")),
            a.change(r, new_patient(name="Gopal Das", mobile="+919800000013")),
        ]
    )
    assert _pairs(settings) == {_pair(p, q, "abha_number")}


def test_a_look_alike_that_held_only_between_two_changes_of_a_batch_is_still_flagged(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    """One change at a time, the new patient met x's ABHA number before the next change moved it away."""
    a = Device(api, doctor)
    x, p = uuid7(), uuid7()
    a.push([a.change(x, new_patient(name="Kamla Devi", abha_number=ABHA_1, mobile="+919800000021"))])
    a.push(
        [
            a.change(p, new_patient(name="Kamala Devi", abha_number=ABHA_1, mobile="+919800000022")),
            a.change(x, {"abha_number": ABHA_2}),
        ]
    )
    assert _pairs(settings) == {_pair(p, x, "abha_number")}


def test_a_look_alike_undone_before_the_other_patient_arrives_is_not_flagged(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a = Device(api, doctor)
    x, p = uuid7(), uuid7()
    a.push([a.change(x, new_patient(name="Kamla Devi", abha_number=ABHA_1, mobile="+919800000031"))])
    a.push(
        [
            a.change(x, {"abha_number": ABHA_2}),
            a.change(p, new_patient(name="Kamala Devi", abha_number=ABHA_1, mobile="+919800000032")),
        ]
    )
    assert _pairs(settings) == set()


def test_set_wise_duplicate_search_finds_what_one_patient_at_a_time_finds(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a = Device(api, doctor)
    ids = [uuid7() for _ in range(9)]
    patients = [
        new_patient(name="Sita Ram", abha_number=ABHA_1, mobile="+919800000041"),
        new_patient(name="Sita Rani", abha_number=ABHA_1, mobile="+919800000042"),  # same ABHA number
        new_patient(name="Asha Devi", abha_address="asha.devi@abdm", mobile="+919800000043"),
        new_patient(name="Asha Kumari", abha_address="asha.devi@abdm", mobile="+919800000044"),  # same address
        new_patient(name="Ravi Verma", mobile="+919800000045", year_of_birth=1980),
        new_patient(name="RAVI VERMA", mobile="+919800000045", year_of_birth=1980),  # mobile + name + year
        new_patient(name="Ravi Verma", mobile="+919800000045", year_of_birth=1981),  # another year: no
        new_patient(name="Sita R", abha_number=ABHA_1, mobile="+919800000046"),  # deleted below
        new_patient(name="Mohan Lal", mobile="+919800000047"),
    ]
    a.push([a.change(i, body) for i, body in zip(ids, patients, strict=True)])
    a.push([{**a.change(ids[7], {}), "op": "delete", "fields": {}, "field_hlcs": {}}])

    async def found(set_wise: bool) -> set[tuple[str, str, str]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("DELETE FROM patient_duplicates")
            clinic = uuid.UUID(DEMO_CLINIC)
            if set_wise:
                await sync_db.detect_duplicates(conn, clinic, ids)
            else:
                for patient_id in ids:
                    await duplicates_db.detect(conn, clinic, patient_id)
            rows = await conn.fetch("SELECT patient_a, patient_b, reason FROM patient_duplicates")
            await tx.rollback()
            return {(str(r["patient_a"]), str(r["patient_b"]), r["reason"]) for r in rows}
        finally:
            await conn.close()

    one_at_a_time = asyncio.run(found(set_wise=False))
    assert one_at_a_time == {
        _pair(ids[0], ids[1], "abha_number"),
        _pair(ids[2], ids[3], "abha_address"),
        _pair(ids[4], ids[5], "mobile_name_year"),
    }
    assert asyncio.run(found(set_wise=True)) == one_at_a_time
