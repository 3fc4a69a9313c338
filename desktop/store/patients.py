"""Patient repository: stored patients as `shared.records.patient.Patient`, per-field stamps, history, search.

A patient row holds the record's fields plus, in ``field_hlcs``, the HLC stamp of the edit that set each
field. Every write goes through `shared.sync.merge.merge_patient` (per-field last-writer-wins), whether the
edit was made here or pulled from the server, so the local store and the server apply one rule. Every value
that loses, the stored one replaced by a newer edit or an arriving one older than what is stored, is kept
in ``patient_history``.

Search runs on the FTS5 index described in the first desktop migration; `plan_search` turns what the
receptionist typed into an FTS5 query and a ranking (see its docstring).
"""

from __future__ import annotations

import contextlib
import functools
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from desktop.errors import NotFound
from desktop.store.sync_state import UNENROLLED_CLINIC_ID
from desktop.store.tables import SEARCH_TABLE, JsonText, json_text, patient_history, patient_search_docs, patients
from shared.audit import canonical_json
from shared.records.patient import Patient, PatientFields
from shared.sync.merge import MergeOutcome, MergeResult, Side, merge_patient
from shared.sync.protocol import DELETED_FIELD, JsonValue

RECORD_FIELDS: tuple[str, ...] = tuple(PatientFields.model_fields)
"""The patient's own fields, as stored in columns of the same names and carried by sync changes."""

_IN_CHUNK = 500


_JSON_TEXT = json_text
"""`desktop.store.tables.JsonText` of a value that is not ``None`` (the same text; tests/desktop/store/
test_patient_bulk_insert.py checks it against ``json.dumps`` with those settings)."""
_MAX_CHAR = "\U0010ffff"  # sorts after every other character (SQLite compares text as UTF-8 bytes)
_fts = sa.table(SEARCH_TABLE, sa.column("rowid"))
_fts_ref: sa.ColumnClause[Any] = sa.literal_column(SEARCH_TABLE)


@dataclass(frozen=True)
class PatientState:
    """A stored patient with its sync metadata (what sync needs to merge a pulled change).

    Args:
        patient: the record as the rest of the app sees it.
        fields: every record field and ``deleted``, JSON values.
        field_hlcs: the stamp of each field that has one (every field a write has set).
        hlc: the greatest stamp of the record.
        deleted: the tombstone.
    """

    patient: Patient
    fields: dict[str, JsonValue]
    field_hlcs: dict[str, str]
    hlc: str
    deleted: bool

    def stamped_fields(self) -> dict[str, JsonValue]:
        """The values that have stamps: the ``current_fields`` argument of `merge_patient`."""
        return {name: self.fields[name] for name in self.field_hlcs}


@dataclass(frozen=True)
class HistoryEntry:
    """A value that lost to another by last-writer-wins.

    Args:
        patient_id: the patient.
        field: the field name.
        value: the value that lost (JSON).
        hlc: its stamp.
        replaced_by_hlc: the stamp of the value kept instead.
        side: ``current`` (it was stored and got replaced) or ``incoming`` (it arrived and lost).
        source: what made the write: ``local``, ``import`` or ``sync``.
        recorded_at: when this PC recorded it.
    """

    patient_id: uuid.UUID
    field: str
    value: JsonValue
    hlc: str
    replaced_by_hlc: str
    side: str
    source: str
    recorded_at: datetime


# --- search planning (pure) ----------------------------------------------------------------------------


def _combining_mark(ch: str) -> bool:
    # Only the generic "Combining Diacritical Marks" block (U+0300-U+036F) used by Latin scripts. Indic vowel
    # signs and viramas are marks too, but they are letters of the name, not accents: removing them would
    # make different Devanagari names rank as equal.
    return "\u0300" <= ch <= "\u036f"


def search_fold(text: str) -> str:
    """Fold a name the way the search tokenizer does: case-folded, Latin accents removed, NFC.

    Used to compare names outside SQL (duplicate rows in an import), so that two spellings the search
    treats as one are one.

    Args:
        text: a name or a query.

    Returns:
        The folded text; ``"José MÜLLER"`` becomes ``"jose muller"``; Devanagari is unchanged but NFC.
    """
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not _combining_mark(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


_SEPARATORS = re.compile(r"[\s\-().+/]")


@dataclass(frozen=True)
class SearchPlan:
    """How to run one search.

    Args:
        match: the FTS5 MATCH expression, or ``None`` for an ABHA address search.
        name_query: the name words of the query, for ranking (empty when only digits were typed).
        digit_variants: the digit strings searched for (the number as typed, and without +91 or 0).
        abha_address: the ABHA address prefix to look up instead of FTS, when the query has an ``@``.
    """

    match: str | None
    name_query: str
    digit_variants: tuple[str, ...]
    abha_address: str | None = None


def _ascii_digits(text: str) -> str:
    # Devanagari and other Nd digits typed on an Indic keyboard count as digits.
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def _digit_variants(typed: str, digits: str) -> tuple[str, ...]:
    variants = [digits]
    if typed.lstrip().startswith("+") and digits.startswith("91") and len(digits) > 2:
        variants = [digits[2:]]
    elif len(digits) == 12 and digits.startswith("91"):
        variants.append(digits[2:])
    elif len(digits) == 11 and digits.startswith("0"):
        variants.append(digits[1:])
    return tuple(variants)


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"*'


def _has_token_chars(term: str) -> bool:
    # Mirrors the tokenizer's categories (L* N* Co M*): a term with none of them yields no token.
    return any(unicodedata.category(ch)[0] in "LNM" or unicodedata.category(ch) == "Co" for ch in term)


def plan_search(query: str) -> SearchPlan | None:
    """Turn typed text into a search.

    * Text with ``@``: an ABHA address prefix (``rajesh.k@``), looked up directly.
    * Only digits and separators (``+91 98123-00003``, ``91-3772-0586-4665``): a mobile or ABHA number.
      The ``digits`` column holds each mobile's 10 digits and their suffixes, so the digits typed match the
      start of the number, any run inside it (the last 4 digits), or the start of an ABHA number.
    * Otherwise each word must be the start of a word of the name (any script, case and Latin accents
      ignored); a word made of digits searches the numbers as above, or the name.

    Args:
        query: what was typed.

    Returns:
        The plan, or ``None`` when the text has nothing to search for.
    """
    text = unicodedata.normalize("NFC", _ascii_digits(query)).strip()
    if not text:
        return None
    if "@" in text:
        word = next(w for w in text.split() if "@" in w)
        return SearchPlan(match=None, name_query="", digit_variants=(), abha_address=word.lower())
    compact = _SEPARATORS.sub("", text)
    if compact.isascii() and compact.isdigit():
        number = _digit_variants(text, compact)
        return SearchPlan(_digits_match(number), "", number)
    names: list[str] = []
    clauses: list[str] = []
    variants: tuple[str, ...] = ()
    for word in text.split():
        digits = _SEPARATORS.sub("", word)
        if digits.isascii() and digits.isdigit():
            variants = variants + _digit_variants(word, digits)
            # Next to name words, a number may also be part of the name as registered ("Baby 2 of Sita").
            clauses.append(f"({_digits_match(_digit_variants(word, digits))} OR name : {_phrase(digits)})")
        elif _has_token_chars(word):
            names.append(word)
            clauses.append(f"name : {_phrase(word)}")
    if not clauses:
        return None
    return SearchPlan(" AND ".join(clauses), " ".join(names), variants)


def _digits_match(variants: Iterable[str]) -> str:
    return "digits : (" + " OR ".join(_phrase(v) for v in variants) + ")"


def _rank(plan: SearchPlan, name: sa.ColumnElement[str] = patients.c.name) -> sa.ColumnElement[int]:
    """0 exact, 1 the whole name (or number) starts with the query, 2 any other match.

    Names compare with SQLite's NOCASE and LIKE, which ignore case for ASCII letters only: enough to rank
    (matching itself is the tokenizer's, which folds every script). A Python fold function over every match
    measured 3x slower on 100 000 patients, and ranking must keep up with typing.

    ``name`` may be the search document's copy of the name (the same text, kept in step by triggers).
    """
    if plan.name_query:
        exact = name.collate("NOCASE") == plan.name_query
        return sa.case((exact, 0), (name.startswith(plan.name_query, autoescape=True), 1), else_=2)
    local = sa.func.substr(patients.c.mobile, 4)
    variants = list(plan.digit_variants)
    exact = sa.or_(local.in_(variants), patients.c.abha_number.in_(variants))
    starts = sa.or_(*(sa.or_(local.startswith(v), patients.c.abha_number.startswith(v)) for v in variants))
    return sa.case((exact, 0), (starts, 1), else_=2)


# --- row mapping ---------------------------------------------------------------------------------------


def _record_fields(m: Mapping[Any, Any]) -> dict[str, JsonValue]:
    return {name: m[name] for name in RECORD_FIELDS}


def _patient(m: Mapping[Any, Any]) -> Patient:
    return Patient.model_validate(
        {
            **_record_fields(m),
            "id": m["id"],
            "clinic_id": m["clinic_id"],
            "version": m["version"],
            "created_at": m["created_at"],
            "updated_at": m["updated_at"],
        }
    )


def _state(m: sa.RowMapping) -> PatientState:
    fields = _record_fields(m)
    fields[DELETED_FIELD] = bool(m["deleted"])
    return PatientState(
        patient=_patient(m),
        fields=fields,
        field_hlcs=dict(m["field_hlcs"]),
        hlc=str(m["hlc"]),
        deleted=bool(m["deleted"]),
    )


def _stamped(m: Mapping[Any, Any]) -> tuple[dict[str, str], dict[str, JsonValue]]:
    """A stored row's field stamps and the values that have them (`PatientState.stamped_fields`), unvalidated."""
    stamps = dict(m["field_hlcs"])
    return stamps, {name: (bool(m[name]) if name == DELETED_FIELD else m[name]) for name in stamps}


def _seen(
    stored: tuple[dict[str, str], dict[str, JsonValue]], fields: Mapping[str, JsonValue], stamps: Mapping[str, str]
) -> bool:
    """Every incoming field is stored already with the same stamp and value (our own echo, or an edit seen
    before): `merge_patient` would change nothing and lose nothing (``noop``), so `merge_many` skips it."""
    stored_stamps, stored_values = stored
    for name, stamp in stamps.items():
        if stored_stamps.get(name) != stamp or name not in stored_values:
            return False
        if canonical_json(stored_values[name]) != canonical_json(fields[name]):
            return False
    return True


def _won(stored_hlcs: Mapping[str, str], result: MergeResult) -> set[str]:
    """The fields an incoming edit changed: those with a new stamp, and those whose stored value lost to another
    value under the same stamp (a reused clock, see `shared.sync.merge`), which keep their stamp."""
    won = {name for name, stamp in result.field_hlcs.items() if stored_hlcs.get(name) != stamp}
    won.update(lost.field for lost in result.lost if lost.side is Side.CURRENT)
    return won


def _columns(fields: Mapping[str, JsonValue]) -> dict[str, object]:
    unknown = fields.keys() - set(RECORD_FIELDS) - {DELETED_FIELD}
    if unknown:
        raise ValueError(f"not patient fields: {', '.join(sorted(unknown))}")
    return {name: (bool(value) if name == DELETED_FIELD else value) for name, value in fields.items()}


def _chunks(values: list[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _new_row(
    patient_id: uuid.UUID,
    *,
    clinic_id: uuid.UUID,
    fields: Mapping[str, JsonValue],
    field_hlcs: Mapping[str, str],
    now: datetime,
) -> dict[str, Any]:
    if fields.keys() != field_hlcs.keys() or not field_hlcs:
        raise ValueError("a new patient needs one stamp per field")
    return {
        **dict.fromkeys(RECORD_FIELDS),
        DELETED_FIELD: False,
        **_columns(fields),
        "id": patient_id,
        "clinic_id": clinic_id,
        "created_at": now,
        "updated_at": now,
        "hlc": max(field_hlcs.values()),
        "field_hlcs": dict(field_hlcs),
        "version": 1,
    }


_COLUMNS: tuple[str, ...] = tuple(patients.c.keys())


@functools.cache
def _processors(
    dialect: sa.Dialect, names: tuple[str, ...], table: sa.Table = patients
) -> tuple[Callable[[Any], Any] | None, ...]:
    return tuple(_processor(table.c[name].type, dialect) for name in names)


def _processor(column_type: Any, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    if isinstance(column_type, JsonText):  # its own conversion, with one encoder instead of one per value
        if column_type.none_as_null:
            return lambda value: None if value is None else _JSON_TEXT(value)
        return _JSON_TEXT
    return column_type.bind_processor(dialect)  # type: ignore[no-any-return]


def _driver_rows(
    dialect: sa.Dialect, names: tuple[str, ...], rows: Iterable[Mapping[str, Any]], table: sa.Table = patients
) -> list[tuple[Any, ...]]:
    """Parameter tuples for a driver-level ``executemany`` over ``patients``, each value converted by its column's
    own type (`desktop.store.tables`): what SQLAlchemy does per row, without its per-row parameter dicts, which
    cost as much as the SQLite work on a pulled page."""
    processors = _processors(dialect, names, table)
    return [
        tuple(
            value if proc is None else proc(value)
            for proc, value in zip(processors, [row[n] for n in names], strict=True)
        )
        for row in rows
    ]


_NEW_FIELDS = frozenset(RECORD_FIELDS) | {DELETED_FIELD}


def _insert_params(
    patient_id: uuid.UUID,
    clinic_text: str,
    fields: Mapping[str, JsonValue],
    field_hlcs: Mapping[str, str],
    now_text: str,
) -> tuple[Any, ...]:
    """`_driver_rows` of `_new_row` for `_INSERT_SQL`, built straight (a pulled page of 1000 new patients spent
    12 ms converting them column by column, more than SQLite's insert); ``clinic_text`` and ``now_text`` come
    converted. tests/desktop/store/test_patient_merge_many.py checks that both give the same tuples."""
    if fields.keys() != field_hlcs.keys() or not field_hlcs:
        raise ValueError("a new patient needs one stamp per field")
    if not fields.keys() <= _NEW_FIELDS:
        _columns(fields)  # raises, naming the unknown fields
    get = fields.get
    address = get("address")
    return (
        str(patient_id if isinstance(patient_id, uuid.UUID) else uuid.UUID(patient_id)),
        clinic_text,
        get("name"),
        get("gender"),
        get("year_of_birth"),
        get("date_of_birth"),
        get("mobile"),
        get("abha_number"),
        get("abha_address"),
        None if address is None else _JSON_TEXT(address),
        now_text,
        now_text,
        max(field_hlcs.values()),
        _JSON_TEXT(field_hlcs if isinstance(field_hlcs, dict) else dict(field_hlcs)),
        1 if get(DELETED_FIELD) else 0,
        1,
    )


_HISTORY_COLUMNS = ("patient_id", "field", "value", "hlc", "replaced_by_hlc", "side", "source", "recorded_at")
# `_HISTORY_INSERT` (ON CONFLICT DO NOTHING: a replayed page lists a losing value once) at the driver level.
_HISTORY_SQL = (
    f"INSERT INTO patient_history ({', '.join(_HISTORY_COLUMNS)}) VALUES ({', '.join('?' * len(_HISTORY_COLUMNS))})"
    " ON CONFLICT DO NOTHING"
)
_INSERT_SQL = f"INSERT INTO patients ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


@functools.cache
def _update_sql(won: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    """``UPDATE patients`` of ``won`` and the stamps and time, ``version`` up by a count (`merge_many`), with the
    parameter names in order (the last two are the count and the id)."""
    names = (*sorted(won), "field_hlcs", "hlc", "updated_at")
    sets = ", ".join(f"{name} = ?" for name in names)
    return f"UPDATE patients SET {sets}, version = version + ? WHERE id = ?", (*names, "version", "id")


BULK_INDEX_FROM = 64
"""From this many new patients on, `PatientRepository.insert_many` adds their search documents set-wise."""

_SEARCH_INSERT_TRIGGER = "patients_search_insert"
# The ``digits`` document of the trigger above, as an expression over ``patients`` instead of ``new``: the
# mobile's 10 digits and their suffixes down to 3 digits, then the ABHA number.
# tests/desktop/store/test_patient_bulk_insert.py checks that both give the same documents.
_DIGITS: sa.ColumnClause[str] = sa.literal_column(
    "trim(coalesce("
    + " || ' ' || ".join(f"substr(patients.mobile, {start})" for start in range(4, 12))
    + ", '') || ' ' || coalesce(patients.abha_number, ''))"
)


def _search_docs_sql(where: str) -> str:
    """``INSERT INTO patient_search_docs … SELECT`` the documents of the patients ``where`` says (SQL over
    ``patients``, ``?`` parameters), in insertion order."""
    select = sa.select(patients.c.id, patients.c.name, _DIGITS).select_from(patients)
    return (
        f"INSERT INTO patient_search_docs (patient_id, name, digits) {select.compile()}"
        f" WHERE {where} ORDER BY patients.rowid"
    )


_LAST_ROWID_SQL = "SELECT max(rowid) FROM patients"
_MIN_ROWID = -(2**63)
_SEARCH_DOCS_AFTER_SQL = _search_docs_sql("patients.rowid > ?")
"""The documents of the rows after a rowid: the rows one ``INSERT`` added, when SQLite gave them rowids after
every stored one (it does, until some rowid reaches 2**63 - 1; `PatientRepository._insert_then_index`)."""


_active = patients.c.deleted == sa.false()
_INSERT = patients.insert()
_HISTORY_INSERT = sqlite_insert(patient_history).on_conflict_do_nothing()
# Statements built once with bound parameters: a pulled page merges hundreds of changes, and building (and
# cache-keying) a new statement object for each cost more than running it.
_FIND_STATE = sa.select(patients).where(patients.c.id == sa.bindparam("p_id", type_=patients.c.id.type))


# Only what `_stamped` reads (the timestamps and the clinic id cost a parse per row), read at the driver level.
_STAMPED_COLUMNS = ("id", "field_hlcs", DELETED_FIELD, *RECORD_FIELDS)


@functools.cache
def _readers(dialect: sa.Dialect, names: tuple[str, ...]) -> tuple[Callable[[Any], Any] | None, ...]:
    """The result conversions of these columns of ``patients`` (their `desktop.store.tables` types)."""
    return tuple(patients.c[name].type.result_processor(dialect, None) for name in names)


_SEARCH_UPDATE_TRIGGER = "patients_search_update"
_SEARCHED = frozenset({"name", "mobile", "abha_number"})
"""The columns whose update rewrites the search document (the ``AFTER UPDATE OF`` list of that trigger)."""


@functools.cache
def _update_statement(won: frozenset[str]) -> sa.Update:
    """``UPDATE patients`` of the fields in ``won`` plus the stamps, version and time (`update_fields`)."""
    columns = [*sorted(won), "field_hlcs", "hlc", "updated_at"]
    return (
        patients.update()
        .where(patients.c.id == sa.bindparam("p_id", type_=patients.c.id.type))
        .values(
            {name: sa.bindparam(f"v_{name}", type_=patients.c[name].type) for name in columns}
            | {"version": patients.c.version + 1}
        )
    )


def _update_search_docs(ids: list[uuid.UUID]) -> sa.Update:
    """``UPDATE patient_search_docs`` of these patients from their rows: what the trigger
    ``patients_search_update`` does for each (tests/desktop/store/test_patient_merge_many.py compares the two)."""
    docs = patient_search_docs
    return (
        docs.update()
        .where(docs.c.patient_id == patients.c.id, docs.c.patient_id.in_(ids))
        .values(name=patients.c.name, digits=_DIGITS)
    )


class PatientRepository:
    """Patient reads and writes on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    # -- reads ----------------------------------------------------------------------------------------

    def find(self, patient_id: uuid.UUID) -> Patient | None:
        """The patient, or ``None`` when unknown or deleted."""
        row = self._conn.execute(sa.select(patients).where(patients.c.id == patient_id, _active)).first()
        return None if row is None else _patient(row._mapping)

    def get(self, patient_id: uuid.UUID) -> Patient:
        """The patient; raises `NotFound` when unknown or deleted."""
        found = self.find(patient_id)
        if found is None:
            raise NotFound("This patient is not on this computer (it may have been deleted or merged).")
        return found

    def find_state(self, patient_id: uuid.UUID) -> PatientState | None:
        """The stored state including tombstoned records, or ``None`` when unknown."""
        row = self._conn.execute(sa.select(patients).where(patients.c.id == patient_id)).first()
        return None if row is None else _state(row._mapping)

    def find_states(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, PatientState]:
        """The stored states of the known ids (tombstoned included)."""
        found: dict[uuid.UUID, PatientState] = {}
        for chunk in _chunks(list(set(ids))):
            for row in self._conn.execute(sa.select(patients).where(patients.c.id.in_(chunk))):
                state = _state(row._mapping)
                found[state.patient.id] = state
        return found

    def stored_stamps(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[dict[str, str], dict[str, JsonValue]]]:
        """(field stamps, stamped values) of the stored ones of these ids (tombstoned included).

        What a pulled page needs to tell new records, edits seen before (its own echoes) and real changes
        apart, read in one query per 500 ids and without validating the records.
        """
        found: dict[uuid.UUID, tuple[dict[str, str], dict[str, JsonValue]]] = {}
        dialect = self._conn.dialect
        keys = _processors(dialect, ("id",))[0]
        readers = _readers(dialect, _STAMPED_COLUMNS)
        for chunk in _chunks(list(set(ids))):
            sql = f"SELECT {', '.join(_STAMPED_COLUMNS)} FROM patients WHERE id IN ({', '.join('?' * len(chunk))})"
            for raw in self._conn.exec_driver_sql(sql, tuple(keys(pid) if keys else pid for pid in chunk)):
                row = dict(
                    zip(
                        _STAMPED_COLUMNS,
                        (v if r is None else r(v) for r, v in zip(readers, raw, strict=True)),
                        strict=True,
                    )
                )
                found[row["id"]] = _stamped(row)
        return found

    def known_ids(self, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ids are stored (tombstoned included), without reading the records."""
        found: set[uuid.UUID] = set()
        for chunk in _chunks(list(set(ids))):
            found.update(self._conn.execute(sa.select(patients.c.id).where(patients.c.id.in_(chunk))).scalars())
        return found

    def rows_for(self, ids: Iterable[uuid.UUID]) -> list[Patient]:
        """The patients with these ids in the order given; unknown and deleted ids are skipped."""
        wanted = list(ids)
        found: dict[uuid.UUID, Patient] = {}
        for chunk in _chunks(list(set(wanted))):
            for row in self._conn.execute(sa.select(patients).where(patients.c.id.in_(chunk), _active)):
                patient = _patient(row._mapping)
                found[patient.id] = patient
        return [found[i] for i in wanted if i in found]

    def all_patients(self) -> list[Patient]:
        """Every patient that is not deleted, oldest first (ids are time-ordered)."""
        rows = self._conn.execute(sa.select(patients).where(_active).order_by(patients.c.id))
        return [_patient(row._mapping) for row in rows]

    def count(self) -> int:
        """How many patients (not deleted) are on this computer."""
        query = sa.select(sa.func.count()).select_from(patients).where(_active)
        return int(self._conn.execute(query).scalar_one())

    def list_by_abha_numbers(self, numbers: Iterable[str]) -> dict[str, list[Patient]]:
        """Patients (not deleted) holding each of these canonical 14-digit ABHA numbers."""
        return self._list_by(patients.c.abha_number, numbers)

    def list_by_abha_addresses(self, addresses: Iterable[str]) -> dict[str, list[Patient]]:
        """Patients (not deleted) holding each of these (lower-case) ABHA addresses."""
        return self._list_by(patients.c.abha_address, addresses)

    def list_by_mobiles(self, mobiles: Iterable[str]) -> dict[str, list[Patient]]:
        """Patients (not deleted) with each of these ``+91`` mobiles (family members share one)."""
        return self._list_by(patients.c.mobile, mobiles)

    def _list_by(self, column: sa.Column[str], values: Iterable[str]) -> dict[str, list[Patient]]:
        found: dict[str, list[Patient]] = {}
        distinct = sorted(set(values))
        for start in range(0, len(distinct), _IN_CHUNK):
            chunk = distinct[start : start + _IN_CHUNK]
            query = sa.select(patients).where(column.in_(chunk), _active).order_by(patients.c.id)
            for row in self._conn.execute(query):
                found.setdefault(row._mapping[column.name], []).append(_patient(row._mapping))
        return found

    def search(self, query: str, limit: int = 50) -> list[Patient]:
        """Patients matching what was typed, best first (see `plan_search` and `_rank`).

        Args:
            query: name words (any script), mobile digits, ABHA number (with or without dashes) or ABHA
                address.
            limit: at most this many results.

        Returns:
            Exact matches first, then names (numbers) that start with the query, then other matches; ties
            by name and id. (bm25 relevance adds nothing for prefix matches of short names and cost 60 ms
            per keystroke on 100 000 patients.)
        """
        plan = plan_search(query)
        if plan is None or limit <= 0:
            return []
        if plan.abha_address is not None:
            address, prefix = patients.c.abha_address, plan.abha_address
            rows = self._conn.execute(
                sa.select(patients)
                .where(
                    address.startswith(prefix, autoescape=True),
                    # The same rows (addresses are stored lower case, as the prefix is), as a range the
                    # address index can serve: SQLite's LIKE ignores case, so it cannot use that index.
                    address >= prefix,
                    address < prefix + _MAX_CHAR,
                    _active,
                )
                .order_by(sa.case((address == prefix, 0), else_=1), patients.c.name)
                .limit(limit)
            )
            return [_patient(row._mapping) for row in rows]
        assert plan.match is not None
        if plan.name_query:
            return self._search_names(plan, limit)
        select = (
            sa.select(patients)
            .select_from(
                _fts.join(patient_search_docs, patient_search_docs.c.doc_id == _fts.c.rowid).join(
                    patients, patients.c.id == patient_search_docs.c.patient_id
                )
            )
            .where(_fts_ref.op("MATCH")(plan.match), _active)
            .order_by(_rank(plan), patients.c.name, patients.c.id)
            .limit(limit)
        )
        return [_patient(row._mapping) for row in self._conn.execute(select)]

    def _search_names(self, plan: SearchPlan, limit: int) -> list[Patient]:
        """`search` for a query with name words, in the same order, without joining every match to its patient.

        A common name matches thousands of patients; reading each one's row (to rank by name and drop the
        deleted) took most of the time. The search documents hold the same name and the same id as the
        patient rows, so the matches are ranked on them, and only the best ones are read, a page at a time,
        dropping deleted patients, until ``limit`` remain or the matches run out.
        """
        docs = patient_search_docs.c
        ranked = (
            sa.select(docs.patient_id)
            .select_from(_fts.join(patient_search_docs, docs.doc_id == _fts.c.rowid))
            .where(_fts_ref.op("MATCH")(plan.match))
            .order_by(_rank(plan, docs.name), docs.name, docs.patient_id)
        )
        found: list[Patient] = []
        offset = 0
        while len(found) < limit:
            ids = list(self._conn.execute(ranked.limit(limit).offset(offset)).scalars())
            found += self.rows_for(ids)
            if len(ids) < limit:
                break
            offset += limit
        return found[:limit]

    def history(self, patient_id: uuid.UUID) -> list[HistoryEntry]:
        """Every value of this patient that lost, oldest first."""
        rows = self._conn.execute(
            sa.select(patient_history).where(patient_history.c.patient_id == patient_id).order_by(patient_history.c.id)
        )
        return [
            HistoryEntry(
                patient_id=row.patient_id,
                field=row.field,
                value=row.value,
                hlc=row.hlc,
                replaced_by_hlc=row.replaced_by_hlc,
                side=row.side,
                source=row.source,
                recorded_at=row.recorded_at,
            )
            for row in rows
        ]

    # -- writes ---------------------------------------------------------------------------------------

    def insert(
        self,
        patient_id: uuid.UUID,
        *,
        clinic_id: uuid.UUID,
        fields: Mapping[str, JsonValue],
        field_hlcs: Mapping[str, str],
        now: datetime,
    ) -> Patient:
        """Store a new patient.

        Args:
            patient_id: the record id (UUIDv7).
            clinic_id: the clinic (or `UNENROLLED_CLINIC_ID`).
            fields: JSON values of the record fields (``deleted`` optional); validated by the caller.
            field_hlcs: a stamp for each entry of ``fields``.
            now: creation time.

        Returns:
            The stored patient.
        """
        row = _new_row(patient_id, clinic_id=clinic_id, fields=fields, field_hlcs=field_hlcs, now=now)
        # Parameters apart from the statement: SQLAlchemy compiles the INSERT once and reuses it, which
        # matters for a 10 000-row CSV import.
        self._conn.execute(_INSERT, row)
        return _patient(row)

    def insert_many(
        self,
        new: Iterable[tuple[uuid.UUID, Mapping[str, JsonValue], Mapping[str, str]]],
        *,
        clinic_id: uuid.UUID,
        now: datetime,
    ) -> int:
        """Store several new patients in one statement (a pulled page): `insert` for each, without reading them back.

        Args:
            new: (patient id, fields, field stamps) of each new patient, as `insert` takes them.
            clinic_id: their clinic.
            now: creation time.

        Returns:
            How many were stored.
        """
        clinic_text, now_text = _driver_rows(
            self._conn.dialect, ("clinic_id", "created_at"), [{"clinic_id": clinic_id, "created_at": now}]
        )[0]
        rows = [_insert_params(pid, clinic_text, f, h, now_text) for pid, f, h in new]
        if len(rows) >= BULK_INDEX_FROM:
            self._insert_then_index(rows)
        elif rows:
            self._conn.exec_driver_sql(_INSERT_SQL, rows)
        return len(rows)

    def _insert_then_index(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert many new patients (`_INSERT_SQL` parameters), then add their search documents in one statement,
        in this transaction.

        The per-row trigger ``patients_search_insert`` (first desktop migration) interleaves three B-trees per
        row; a page of 1000 went in at 4-10k rows/s with it and 24k rows/s with the documents added after the
        rows (BENCHMARKS.md, P2). So the trigger is dropped for these inserts and created again from its own
        stored SQL before this returns (`_search_trigger_off`). The FTS index itself is still filled by the
        documents' own trigger, row by row, inside the same transaction.
        """
        with self._search_trigger_off(_SEARCH_INSERT_TRIGGER, True) as off:
            last = self._conn.exec_driver_sql(_LAST_ROWID_SQL).scalar() if off else None
            self._conn.exec_driver_sql(_INSERT_SQL, rows)
            if not off:
                return
            # SQLite numbers new rows after the largest rowid (https://sqlite.org/autoinc.html), so the rows after
            # ``last`` are exactly these: their documents come from a range scan, not 1000 id lookups. Once a
            # rowid has reached 2**63 - 1 it picks free ones at random: the rows at or below ``last`` are then
            # found by id.
            after = _MIN_ROWID if last is None else last
            added = self._conn.exec_driver_sql(_SEARCH_DOCS_AFTER_SQL, (after,)).rowcount
            if added != len(rows):
                for chunk in _chunks([row[0] for row in rows]):
                    sql = _search_docs_sql(f"patients.id IN ({', '.join('?' * len(chunk))}) AND patients.rowid <= ?")
                    self._conn.exec_driver_sql(sql, (*chunk, after))

    def get_any(self, patient_id: uuid.UUID) -> Patient:
        """The patient even when tombstoned; raises `NotFound` when unknown."""
        state = self.find_state(patient_id)
        if state is None:
            raise NotFound("This patient is not on this computer.")
        return state.patient

    def update_fields(
        self,
        patient_id: uuid.UUID,
        fields: Mapping[str, JsonValue],
        field_hlcs: Mapping[str, str],
        *,
        source: str,
        now: datetime,
        current: tuple[dict[str, str], dict[str, JsonValue]] | None = None,
    ) -> MergeResult:
        """Merge stamped field values into a stored patient by per-field last-writer-wins.

        Values that lose (stored ones replaced, or incoming ones older than the stored) go to history.
        The merged record is not validated here: local edits are validated by the service before, and
        sync validates the merged state it gets back (and rolls back when it is invalid).

        Args:
            patient_id: the patient.
            fields: JSON values of some record fields and/or ``deleted``.
            field_hlcs: one stamp per entry of ``fields``.
            source: what makes the write (``local``, ``import``, ``sync``), recorded in history.
            now: time of the write.
            current: the stored (field stamps, stamped values), as `stored_stamps` read them in this
                transaction, when the caller has them (a pulled page): saves reading the row again.

        Returns:
            The merge result (`MergeOutcome.NOOP` when nothing incoming won: then the row is unchanged).

        Raises:
            NotFound: when the patient is unknown.
        """
        if current is None:
            row = self._conn.execute(_FIND_STATE, {"p_id": patient_id}).first()
            if row is None:
                raise NotFound("This patient is not on this computer.")
            # `find_state(...).stamped_fields()` without validating the whole record into a `Patient` (half the
            # cost of a pulled edit): the merge needs the stamped values only.
            current = _stamped(row._mapping)
        stored_hlcs, stored = current
        result = merge_patient(stored, stored_hlcs, fields, field_hlcs)
        for lost in result.lost:
            self._conn.execute(
                _HISTORY_INSERT,
                {
                    "patient_id": patient_id,
                    "field": lost.field,
                    "value": lost.value,
                    "hlc": lost.hlc,
                    "replaced_by_hlc": result.field_hlcs[lost.field],
                    "side": str(lost.side),
                    "source": source,
                    "recorded_at": now,
                },
            )
        if result.outcome is MergeOutcome.NOOP:
            return result
        won = _won(stored_hlcs, result)
        params = {f"v_{name}": value for name, value in _columns({name: result.fields[name] for name in won}).items()}
        params |= {
            "p_id": patient_id,
            "v_field_hlcs": result.field_hlcs,
            "v_hlc": max(result.field_hlcs.values()),
            "v_updated_at": now,
        }
        self._conn.execute(_update_statement(frozenset(won)), params)
        return result

    def merge_many(
        self,
        edits: Iterable[tuple[uuid.UUID, Mapping[str, JsonValue], Mapping[str, str]]],
        current: dict[uuid.UUID, tuple[dict[str, str], dict[str, JsonValue]]],
        *,
        source: str,
        now: datetime,
    ) -> list[MergeResult]:
        """`update_fields` of many edits of stored patients (a pulled page), in order, written set-wise.

        Each edit is merged into the state the edits before it left (``current``, as `stored_stamps` read it in
        this transaction; updated here), exactly as `update_fields` one after the other would. The writes then
        go out together: the losing values in one ``executemany`` (in the same order), and one ``UPDATE`` per
        edited patient, of every field any of its edits won, with ``version`` raised once per edit that changed
        it, grouped into one ``executemany`` per set of columns. From `BULK_INDEX_FROM` patients whose name or
        numbers changed, their search documents are rewritten in one statement instead of by the per-row
        trigger (dropped and re-created inside this transaction, as `insert_many` does).

        Args:
            edits: (patient id, fields, field stamps) of each edit, in page order.
            current: (field stamps, stamped values) of every patient the edits touch.
            source: recorded in history (``sync``).
            now: time of the writes.

        Returns:
            The merge result of each edit, in order.

        Raises:
            NotFound: when an edit's patient is not in ``current``.
        """
        results: list[MergeResult] = []
        history: list[dict[str, Any]] = []
        edited: dict[uuid.UUID, tuple[set[str], int]] = {}
        for patient_id, fields, field_hlcs in edits:
            state = current.get(patient_id)
            if state is None:
                raise NotFound("This patient is not on this computer.")
            stored_hlcs, stored = state
            if _seen(state, fields, field_hlcs):
                results.append(MergeResult(dict(stored), dict(stored_hlcs), (), MergeOutcome.NOOP))
                continue
            # Only the stored fields the edit names take part (a merge decides field by field): the others are
            # copied, which spares decoding each of their stamps for every edit.
            named = {name: stored[name] for name in fields if name in stored_hlcs}
            part = merge_patient(named, {name: stored_hlcs[name] for name in named}, fields, field_hlcs)
            result = MergeResult(stored | part.fields, stored_hlcs | part.field_hlcs, part.lost, part.outcome)
            results.append(result)
            history += (
                {
                    "patient_id": patient_id,
                    "field": lost.field,
                    "value": lost.value,
                    "hlc": lost.hlc,
                    "replaced_by_hlc": result.field_hlcs[lost.field],
                    "side": str(lost.side),
                    "source": source,
                    "recorded_at": now,
                }
                for lost in result.lost
            )
            if result.outcome is MergeOutcome.NOOP:
                continue
            won = _won(stored_hlcs, result)
            before, count = edited.get(patient_id, (set(), 0))
            edited[patient_id] = (before | won, count + 1)
            current[patient_id] = (dict(result.field_hlcs), {n: result.fields[n] for n in result.field_hlcs})
        if history:
            lost_rows = _driver_rows(self._conn.dialect, _HISTORY_COLUMNS, history, patient_history)
            self._conn.exec_driver_sql(_HISTORY_SQL, lost_rows)
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for patient_id, (changed, count) in edited.items():
            stamps, values = current[patient_id]
            params = _columns({name: values[name] for name in changed})
            params |= {
                "id": patient_id,
                "version": count,
                "field_hlcs": stamps,
                "hlc": max(stamps.values()),
                "updated_at": now,
            }
            groups.setdefault(frozenset(changed), []).append(params)
        reindex = [pid for pid, (changed, _) in edited.items() if changed & _SEARCHED]
        with self._search_trigger_off(_SEARCH_UPDATE_TRIGGER, len(reindex) >= BULK_INDEX_FROM) as off:
            for columns, rows in groups.items():
                sql, names = _update_sql(columns)
                self._conn.exec_driver_sql(sql, _driver_rows(self._conn.dialect, names, rows))
            if off:
                for chunk in _chunks(reindex):
                    self._conn.execute(_update_search_docs(chunk))
        return results

    @contextlib.contextmanager
    def _search_trigger_off(self, name: str, wanted: bool) -> Iterator[bool]:
        """Drop the trigger ``name`` for the block when ``wanted`` and it exists, and create it again from its own
        stored SQL after the block, in this transaction (DDL in SQLite is transactional: other connections see the
        trigger at all times, and a failure rolls all of it back). Yields whether it is off."""
        trigger = None
        if wanted:
            trigger = self._conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
            ).scalar_one_or_none()
        if trigger is None:
            yield False
            return
        self._conn.exec_driver_sql(f"DROP TRIGGER {name}")
        try:
            yield True
        finally:
            self._conn.exec_driver_sql(str(trigger))

    def adopt_clinic(self, clinic_id: uuid.UUID) -> int:
        """Give records made before enrolment (clinic `UNENROLLED_CLINIC_ID`) their clinic.

        Call it in the enrolment's unit of work, together with ``sync_state.set_clinic_id``. Stamps and the
        outbox are untouched: the clinic is not a synced field (the server files changes under the pushing
        device's clinic).

        Returns:
            How many patients were re-homed.
        """
        if clinic_id == UNENROLLED_CLINIC_ID:
            raise ValueError("adopt_clinic needs a real clinic id")
        return self._conn.execute(
            patients.update().where(patients.c.clinic_id == UNENROLLED_CLINIC_ID).values(clinic_id=clinic_id)
        ).rowcount
