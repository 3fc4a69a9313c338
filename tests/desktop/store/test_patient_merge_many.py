"""`PatientRepository.merge_many` (a pulled page's edits, written set-wise) against `update_fields` one by one.

Both run on the same stored patients in a transaction that is rolled back, and must leave the same rows
(fields, stamps, version), the same history in the same order, the same search documents and the same
search answers; `_insert_params` must give the tuples the column types give.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.store import LocalStore
from desktop.store.patients import (
    _COLUMNS,
    BULK_INDEX_FROM,
    PatientRepository,
    _driver_rows,
    _insert_params,
    _new_row,
)
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.protocol import JsonValue

NOW = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
BASE = 80  # stored patients: more than BULK_INDEX_FROM, so a page can take the set-wise search path
IDS = [uuid.UUID(int=(0x019AB4C2_7D10_7000_8000 << 48) + n) for n in range(BASE)]
NAMES = ["Anil Kumar", "राधा कुमारी", "José Müller", "Sita"]
MOBILES = [None, "+919812345678", "+919800000001", "+918877665544"]
ADDRESSES: list[JsonValue] = [None, {"line": "12 MG Road", "district": "Pune"}, {"line": "Ward 4"}]


def _stamp(wall: int, node: str) -> str:
    return encode(Stamp(1_700_000_000_000 + wall, 0, node))


def _base(n: int) -> tuple[dict[str, JsonValue], dict[str, str]]:
    fields: dict[str, JsonValue] = {
        "name": f"{NAMES[n % 4]} {n}",
        "gender": "MF"[n % 2],
        "year_of_birth": 1980 + n % 20,
        "mobile": MOBILES[n % 4],
        "address": ADDRESSES[n % 3],
    }
    return fields, dict.fromkeys(fields, _stamp(50, "pc-a"))


@pytest.fixture
def stored(local_store: LocalStore) -> LocalStore:
    def write() -> None:
        with local_store.uow.write() as uow:
            uow.patients.insert_many([(pid, *_base(n)) for n, pid in enumerate(IDS)], clinic_id=uuid7(), now=NOW)
            uow.commit()

    local_store.writer.run(write)
    return local_store


_field_edit = st.one_of(
    st.tuples(st.just("name"), st.sampled_from(NAMES).map(lambda n: n + " X")),
    st.tuples(st.just("mobile"), st.sampled_from(MOBILES)),
    st.tuples(st.just("address"), st.sampled_from(ADDRESSES)),
    st.tuples(st.just("gender"), st.sampled_from(["M", "F", "O"])),
    st.tuples(st.just("deleted"), st.booleans()),
)
_edit = st.tuples(
    st.integers(0, BASE - 1),
    st.lists(st.tuples(_field_edit, st.integers(0, 100), st.sampled_from(["pc-a", "pc-b"])), min_size=1, max_size=4),
)


def _as_change(
    n: int, parts: list[tuple[tuple[str, JsonValue], int, str]]
) -> tuple[uuid.UUID, dict[str, Any], dict[str, str]]:
    fields: dict[str, JsonValue] = {}
    stamps: dict[str, str] = {}
    for (name, value), wall, node in parts:
        fields[name], stamps[name] = value, _stamp(wall, node)  # equal stamps with other values happen too
    return IDS[n], fields, stamps


def _snapshot(conn: sa.Connection, repo: PatientRepository) -> dict[str, Any]:
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.exec_driver_sql(sql).all()]

    return {
        "patients": rows("SELECT * FROM patients ORDER BY rowid"),
        "history": rows(
            "SELECT patient_id, field, value, hlc, replaced_by_hlc, side, source, recorded_at FROM patient_history"
            " ORDER BY id"
        ),
        "docs": rows("SELECT doc_id, patient_id, name, digits FROM patient_search_docs ORDER BY doc_id"),
        "search": {q: [p.id for p in repo.search(q, limit=500)] for q in ["kumar", "x", "zed", "9812", "7700"]},
        "triggers": rows("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"),
    }


def _both(store: LocalStore, edits: list[tuple[uuid.UUID, dict[str, Any], dict[str, str]]]) -> tuple[Any, Any]:
    """(results and snapshot) of merging ``edits`` one by one, and of `merge_many`; nothing is kept."""

    def run(set_wise: bool) -> tuple[list[Any], dict[str, Any]]:
        with store.uow.write() as uow:
            current = uow.patients.stored_stamps(IDS)
            if set_wise:
                results = uow.patients.merge_many(edits, current, source="sync", now=NOW)
            else:
                results = [
                    uow.patients.update_fields(pid, fields, stamps, source="sync", now=NOW)
                    for pid, fields, stamps in edits
                ]
            outcome = [(r.fields, r.field_hlcs, r.lost, r.outcome) for r in results]
            snapshot = _snapshot(uow.connection, uow.patients)
            uow.rollback()
        return outcome, snapshot

    return store.writer.run(run, False), store.writer.run(run, True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_edit, max_size=40))
def test_merge_many_equals_merging_one_by_one(stored: LocalStore, page: list[Any]) -> None:
    edits = [_as_change(n, parts) for n, parts in page]
    one_by_one, set_wise = _both(stored, edits)
    assert set_wise == one_by_one


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_edit, min_size=BULK_INDEX_FROM, max_size=3 * BASE))
def test_a_large_page_rewrites_the_search_documents_as_the_trigger_does(stored: LocalStore, page: list[Any]) -> None:
    renames = [
        (pid, {"name": "Zed Renamed", "mobile": "+917700000000"}, dict.fromkeys(("name", "mobile"), _stamp(90, "pc-c")))
        for pid in IDS
    ]
    edits = [_as_change(n, parts) for n, parts in page] + renames
    one_by_one, set_wise = _both(stored, edits)
    assert set_wise == one_by_one
    assert set_wise[1]["search"]["zed"] and set_wise[1]["search"]["7700"]  # the renames are found by name and number
    with stored.uow.read() as uow:
        assert uow.patients.search("zed") == []  # rolled back: nothing of either run stayed


def test_a_failed_merge_many_keeps_the_search_trigger_and_nothing_else(stored: LocalStore) -> None:
    edits = [(pid, {"name": "Zed"}, {"name": _stamp(90, "pc-c")}) for pid in IDS] + [
        (uuid7(), {"name": "Unknown"}, {"name": _stamp(90, "pc-c")})
    ]

    def run() -> None:
        with stored.uow.write() as uow:
            uow.patients.merge_many(edits, uow.patients.stored_stamps(IDS), source="sync", now=NOW)

    before = stored.writer.run(lambda: _read(stored))
    with pytest.raises(Exception, match="not on this computer"):
        stored.writer.run(run)
    assert stored.writer.run(lambda: _read(stored)) == before


def _read(store: LocalStore) -> dict[str, Any]:
    with store.uow.read() as uow:
        return _snapshot(uow.connection, uow.patients)


@given(
    fields=st.fixed_dictionaries(
        {
            "name": st.text(min_size=1, max_size=20),
            "gender": st.sampled_from("MFOU"),
            "year_of_birth": st.integers(1900, 2026),
        },
        optional={
            "mobile": st.sampled_from(MOBILES),
            "date_of_birth": st.just("1990-01-02"),
            "abha_number": st.just("91000000000001"),
            "abha_address": st.just("a.b@abdm"),
            "address": st.sampled_from(ADDRESSES),
            "deleted": st.booleans(),
        },
    ),
    stamp=st.integers(0, 1000),
)
def test_insert_params_are_the_column_types_conversion(fields: dict[str, JsonValue], stamp: int) -> None:
    dialect = sa.create_engine("sqlite://").dialect
    pid, clinic = uuid7(), uuid7()
    stamps = dict.fromkeys(fields, _stamp(stamp, "pc-a"))
    generic = _driver_rows(
        dialect, _COLUMNS, [_new_row(pid, clinic_id=clinic, fields=fields, field_hlcs=stamps, now=NOW)]
    )
    clinic_text, now_text = _driver_rows(
        dialect, ("clinic_id", "created_at"), [{"clinic_id": clinic, "created_at": NOW}]
    )[0]
    assert _insert_params(pid, clinic_text, fields, stamps, now_text) == generic[0]
    with pytest.raises(ValueError, match="not patient fields: colour"):
        _insert_params(pid, clinic_text, fields | {"colour": "red"}, stamps | {"colour": "x"}, now_text)


def test_a_value_that_wins_under_the_same_stamp_is_written(stored: LocalStore) -> None:
    """A reused stamp with another value: the greater canonical JSON wins (`shared.sync.merge`) and must be
    stored, not only named in history (both paths used to skip the column because its stamp stayed)."""
    stamp = _stamp(50, "pc-a")  # the stamp every stored field has
    for set_wise in (False, True):
        n = 4 if set_wise else 0  # "Anil Kumar 0" and "Anil Kumar 4"
        pid = IDS[n]

        def write(pid: uuid.UUID = pid, set_wise: bool = set_wise) -> None:
            with stored.uow.write() as uow:
                edit = {"name": "Zz Later Value"}  # "Zz…" sorts after every stored name
                if set_wise:
                    uow.patients.merge_many(
                        [(pid, edit, {"name": stamp})], uow.patients.stored_stamps([pid]), source="sync", now=NOW
                    )
                else:
                    uow.patients.update_fields(pid, edit, {"name": stamp}, source="sync", now=NOW)
                uow.commit()

        stored.writer.run(write)
        with stored.uow.read() as uow:
            assert uow.patients.get(pid).name == "Zz Later Value"
            assert [(h.field, h.value, h.side) for h in uow.patients.history(pid)] == [
                ("name", f"Anil Kumar {n}", "current")
            ]
            assert pid in {p.id for p in uow.patients.search("zz later")}
