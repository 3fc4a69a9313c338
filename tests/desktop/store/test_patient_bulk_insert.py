"""`PatientRepository.insert_many` of a large pulled page: search documents added set-wise, same as the trigger's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from desktop.errors import KnownError
from desktop.services.patients import PatientService
from desktop.store import LocalStore
from desktop.store.patients import _JSON_TEXT, BULK_INDEX_FROM
from desktop.store.tables import JsonText
from shared.clock import Stamp, encode
from shared.ids import luhn_check_digit, uuid7
from shared.sync.protocol import JsonValue

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
STAMP = encode(Stamp(5_000, 0, "other-pc"))
NAMES = ["राधा कुमारी", "José Müller", "முருகன் செல்வம்", "Anil Kumar Verma", "Sita", "Baby 2 of Sita"]


def _bodies(count: int) -> list[dict[str, JsonValue]]:
    """Patients with and without a mobile and an ABHA number, names in several scripts."""
    bodies: list[dict[str, JsonValue]] = []
    for n in range(count):
        body: dict[str, JsonValue] = {"name": f"{NAMES[n % len(NAMES)]} {n}", "gender": "F", "year_of_birth": 1990}
        if n % 3:
            body["mobile"] = f"+9198{n:08d}"
        if n % 4 == 0:
            payload = f"{9_100_000_000_000 + n:013d}"
            body["abha_number"] = payload + str(luhn_check_digit(payload))
        bodies.append(body)
    return bodies


def _store(local_store: LocalStore, rows: list[tuple[uuid.UUID, dict[str, JsonValue]]], *, bulk: bool) -> None:
    def write() -> None:
        with local_store.uow.write() as uow:
            new = [(pid, body, dict.fromkeys(body, STAMP)) for pid, body in rows]
            if bulk:
                assert uow.patients.insert_many(new, clinic_id=uuid7(), now=NOW) == len(rows)
            else:  # one at a time: the trigger path
                for pid, body, stamps in new:
                    uow.patients.insert(pid, clinic_id=uuid7(), fields=body, field_hlcs=stamps, now=NOW)
            uow.commit()

    local_store.writer.run(write)


def _documents(local_store: LocalStore) -> list[tuple[Any, ...]]:
    with local_store.uow.read() as uow:
        rows = uow.connection.exec_driver_sql(
            "SELECT patient_id, name, digits FROM patient_search_docs ORDER BY patient_id"
        ).all()
    return [tuple(row) for row in rows]


def _trigger_sql(local_store: LocalStore) -> str | None:
    with local_store.uow.read() as uow:
        return uow.connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'patients_search_insert'"
        ).scalar_one_or_none()


def test_a_large_page_gets_the_documents_and_search_of_one_insert_at_a_time(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    bodies = _bodies(BULK_INDEX_FROM + 30)
    bulk = [(uuid7(), body) for body in bodies]
    single = [(uuid7(), body) for body in bodies]
    trigger = _trigger_sql(local_store)
    assert trigger is not None

    _store(local_store, bulk, bulk=True)
    by_bulk = {pid: (name, digits) for pid, name, digits in _documents(local_store)}
    assert _trigger_sql(local_store) == trigger  # put back exactly as the migration made it
    _store(local_store, single, bulk=False)  # the trigger works again after a bulk insert
    documents = {pid: (name, digits) for pid, name, digits in _documents(local_store)}

    assert len(documents) == 2 * len(bodies)
    for (bulk_id, _), (single_id, _) in zip(bulk, single, strict=True):
        assert documents[str(bulk_id)] == by_bulk[str(bulk_id)] == documents[str(single_id)]
    # The FTS index answers for both halves alike: every query finds one bulk and one single patient.
    # The FTS index answers for both halves alike: each query finds the same patients among both.
    for query, index in [("राध", 0), ("mull", 1), (str(bodies[4]["mobile"])[-4:], 4)]:
        found = {p.id for p in patient_service.search(query, limit=500)}
        assert bulk[index][0] in found and single[index][0] in found
        assert [pid in found for pid, _ in bulk] == [pid in found for pid, _ in single]
    abha = str(bodies[0]["abha_number"])
    assert {p.id for p in patient_service.search(abha)} == {bulk[0][0], single[0][0]}


def test_a_failed_bulk_insert_leaves_no_row_no_document_and_the_trigger(local_store: LocalStore) -> None:
    bodies = _bodies(BULK_INDEX_FROM)
    rows = [(uuid7(), body) for body in bodies]
    _store(local_store, rows[:1], bulk=True)  # one stored already: the page below collides with it
    before = _documents(local_store)
    trigger = _trigger_sql(local_store)

    with pytest.raises((sa.exc.IntegrityError, KnownError)):
        _store(local_store, rows, bulk=True)

    assert _documents(local_store) == before
    assert _trigger_sql(local_store) == trigger
    with local_store.uow.read() as uow:
        assert uow.patients.known_ids(pid for pid, _ in rows) == {rows[0][0]}


def test_a_page_after_the_largest_rowid_finds_its_rows_by_id(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    """Once a rowid is 2**63 - 1, SQLite gives new rows free rowids at random (below it): the documents of the
    rows not after the old largest rowid come by id, so every new patient still gets exactly one."""
    first = [(uuid7(), body) for body in _bodies(1)]
    _store(local_store, first, bulk=False)

    def to_the_top() -> None:
        with local_store.uow.write() as uow:
            uow.connection.exec_driver_sql("UPDATE patients SET rowid = 9223372036854775807")
            uow.commit()

    local_store.writer.run(to_the_top)
    bodies = _bodies(BULK_INDEX_FROM + 10)
    page = [(uuid7(), body) for body in bodies]
    _store(local_store, page, bulk=True)

    documents = {pid: (name, digits) for pid, name, digits in _documents(local_store)}
    assert len(documents) == 1 + len(page)
    single = [(uuid7(), body) for body in bodies]
    _store(local_store, single, bulk=False)  # the trigger's documents, to compare with
    documents = {pid: (name, digits) for pid, name, digits in _documents(local_store)}
    for (bulk_id, _), (single_id, _) in zip(page, single, strict=True):
        assert documents[str(bulk_id)] == documents[str(single_id)]
    assert bulk_id in {p.id for p in patient_service.search(str(bodies[-1]["name"]))}


def test_a_page_into_an_empty_store_and_after_stored_rows_gets_every_document(local_store: LocalStore) -> None:
    first = [(uuid7(), body) for body in _bodies(BULK_INDEX_FROM)]
    _store(local_store, first, bulk=True)  # no rowid before: every row is new
    second = [(uuid7(), body) for body in _bodies(BULK_INDEX_FROM + 1)]
    _store(local_store, second, bulk=True)
    assert sorted(pid for pid, _, _ in _documents(local_store)) == sorted(str(pid) for pid, _ in first + second)
    with local_store.uow.read() as uow:  # in insertion order, as the trigger adds them
        order = uow.connection.exec_driver_sql("SELECT patient_id FROM patient_search_docs ORDER BY doc_id").scalars()
        assert list(order) == [str(pid) for pid, _ in first + second]


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16,
)


@given(value=_JSON_VALUES)
def test_the_json_text_of_a_row_is_the_json_text_column_encoding(value: Any) -> None:
    column = JsonText(none_as_null=False)
    assert _JSON_TEXT(value) == column.process_bind_param(value, sa.create_engine("sqlite://").dialect)


def test_a_value_json_cannot_hold_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _JSON_TEXT({"when": datetime(2026, 1, 1)})
