"""Patients: every query is scoped by clinic_id; there is no function that reads across clinics."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

_COLUMNS = (
    "id, clinic_id, name, gender, year_of_birth, date_of_birth, mobile, abha_number, abha_address, "
    "address, version, created_at, updated_at"
)
MUTABLE = (
    "name",
    "gender",
    "year_of_birth",
    "date_of_birth",
    "mobile",
    "abha_number",
    "abha_address",
    "address",
)


def to_dict(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    if out.get("address") is not None:
        out["address"] = json.loads(out["address"])
    return out


async def insert(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    clinic_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    fields: dict[str, Any],
    hlc: str,
) -> dict[str, Any] | None:
    """Insert with every field stamped ``hlc``; None when the id is already taken (ids are global)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO patients (id, clinic_id, name, gender, year_of_birth, date_of_birth, mobile,
                              abha_number, abha_address, address, created_by, updated_by, hlc, field_hlcs)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $11, $12, $13::jsonb)
        ON CONFLICT (id) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        patient_id,
        clinic_id,
        fields["name"],
        fields["gender"],
        fields["year_of_birth"],
        fields.get("date_of_birth"),
        fields.get("mobile"),
        fields.get("abha_number"),
        fields.get("abha_address"),
        _json(fields.get("address")),
        actor_id,
        hlc,
        json.dumps(dict.fromkeys(MUTABLE, hlc)),
    )
    return to_dict(row) if row else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


async def get(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, patient_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM patients WHERE id = $1 AND clinic_id = $2 AND NOT deleted{lock}",
        patient_id,
        clinic_id,
    )
    return to_dict(row) if row else None


async def update(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    patient_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    changes: dict[str, Any],
    hlc: str,
) -> dict[str, Any]:
    """Set some fields, each stamped ``hlc`` (the server's clock) for per-field last-writer-wins."""
    cols = [c for c in MUTABLE if c in changes]
    sets = ", ".join(f"{c} = ${i + 6}{'::jsonb' if c == 'address' else ''}" for i, c in enumerate(cols))
    values = [_json(changes[c]) if c == "address" else changes[c] for c in cols]
    row = await conn.fetchrow(
        f"""
        UPDATE patients SET {sets}, version = version + 1, updated_at = now(), updated_by = $3,
               hlc = GREATEST(hlc, $4), field_hlcs = field_hlcs || $5::jsonb
        WHERE id = $1 AND clinic_id = $2
        RETURNING {_COLUMNS}
        """,
        patient_id,
        clinic_id,
        actor_id,
        hlc,
        json.dumps(dict.fromkeys(cols, hlc)),
        *values,
    )
    return to_dict(row)


async def find_by_identifier(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    *,
    abha_number: str | None,
    abha_address: str | None,
    exclude: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """A live patient of the clinic holding this ABHA number or address (duplicate registration check)."""
    if abha_number is None and abha_address is None:
        return None
    return await conn.fetchval(  # type: ignore[no-any-return]
        """
        SELECT id FROM patients
        WHERE clinic_id = $1 AND NOT deleted AND id IS DISTINCT FROM $4
          AND ((abha_number = $2) OR (abha_address = $3))
        LIMIT 1
        """,
        clinic_id,
        abha_number,
        abha_address,
        exclude,
    )


async def lock_identifiers(conn: asyncpg.Connection, clinic_id: uuid.UUID, keys: list[str]) -> None:
    """Serialise registrations that claim the same ABHA identifier in one clinic (checked, then inserted)."""
    for key in sorted(keys):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 13))", f"{clinic_id}:{key}")


# Name search runs in tiers, best first; a row appears in the first tier it matches only. Within tiers 1-3 the
# newest registration comes first; tier 4 (typos) is ordered by trigram word similarity. Each tier is its own
# small indexed query (whole-name prefix: patients_clinic_name_prefix; the others: patients_name_trgm), which
# is what keeps p95 low at 100k patients: the alternative, scoring every trigram match and sorting, costs
# tens of milliseconds for a common surname (BENCHMARKS.md).
def _tier_condition(tier: int, word_params: list[str]) -> str:
    """SQL condition of a tier; ``$2`` is the whole term, ``word_params`` the parameter markers of its words.

    Per-word conditions are spelled out (not looped over an array) so that each can use the trigram index.
    """
    if tier == 1:
        return "lower(name) LIKE $2 || '%'"
    if tier == 2:
        return "lower(name) LIKE '% ' || $2 || '%'"
    if tier == 3:
        return "(" + " AND ".join(f"lower(name) LIKE '%' || {w} || '%'" for w in word_params) + ")"
    return "(" + " AND ".join(f"{w} <% lower(name)" for w in word_params) + ")"


# Per typed word: a misspelt name word scores 0.4-0.6 against the intended one ("pradip" ~ "pradeep" 0.57,
# "sanajy" ~ "sanjay" 0.43); pg_trgm's default 0.6 misses most of them. Every word must pass, and results are
# ordered by mean similarity, so a low per-word bar stays precise (bench/server_patients.py "found" column).
FUZZY_THRESHOLD = 0.4
MAX_WORDS = 6


async def search_name_tier(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    *,
    tier: int,
    term: str,
    words: list[str],
    limit: int,
    after: tuple[float, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """One tier of a name search, best first; rows matching an earlier tier are left out.

    Name search runs in tiers: 1 whole-name prefix, 2 prefix of a later word, 3 every typed word inside the
    name, 4 every typed word close to a word of the name (typos). Within tiers 1-3 the newest registration
    comes first; tier 4 is ordered by trigram word similarity. Each tier is one small indexed query
    (tier 1: patients_clinic_name_prefix; the others: patients_name_trgm). Scoring every trigram match and
    sorting instead costs tens of milliseconds for a common surname at 100k patients (BENCHMARKS.md).
    """
    words = words[:MAX_WORDS] if tier >= 3 else []  # tiers 1-2 use only the whole term
    word_params = [f"${i + 3}" for i in range(len(words))]
    args: list[Any] = [clinic_id, term, *words]
    earlier = " ".join(f"AND NOT ({_tier_condition(t, word_params)})" for t in range(1, tier))
    score = (
        "(" + " + ".join(f"word_similarity({w}, lower(name))" for w in word_params) + f") / {len(words)}"
        if tier == 4
        else "0"
    )
    keyset = ""
    if after is not None:
        n = len(args)
        keyset = f"AND (({score})::float8, id) < (${n + 1}::float8, ${n + 2}::uuid)"
        args += [after[0], after[1]]
    if tier == 4:
        await conn.execute(f"SET LOCAL pg_trgm.word_similarity_threshold = {FUZZY_THRESHOLD}")
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, ({score})::float8 AS score FROM patients
        WHERE clinic_id = $1 AND NOT deleted AND {_tier_condition(tier, word_params)} {earlier} {keyset}
        ORDER BY score DESC, id DESC
        LIMIT {int(limit)}
        """,
        *args,
    )
    return [to_dict(r) for r in rows]


async def search_exact(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    *,
    kind: str,
    term: str | None,
    limit: int,
    after: uuid.UUID | None,
) -> list[dict[str, Any]]:
    """Identifier searches (ABHA number / address, mobile, mobile digits) and the unfiltered list, newest first."""
    where = {
        "all": "true",
        "abha_number": "abha_number = $2",
        "abha_address": "abha_address = $2",
        "mobile": "mobile = $2",
        "mobile_part": "mobile LIKE '%' || $2 || '%'",
    }[kind]
    args: list[Any] = [clinic_id, term or ""]
    keyset = ""
    if after is not None:
        keyset = "AND id < $3::uuid"
        args.append(after)
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, 0::float8 AS score FROM patients
        WHERE clinic_id = $1 AND NOT deleted AND {where} AND length($2::text) >= 0 {keyset}
        ORDER BY id DESC
        LIMIT {int(limit)}
        """,
        *args,
    )
    return [to_dict(r) for r in rows]


def state_of(row: asyncpg.Record | dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A stored patient as sync sees it: JSON field values and their stamps (fields never set are absent)."""
    raw = row["field_hlcs"]
    stamps: dict[str, str] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    fields: dict[str, Any] = {}
    for name in stamps:
        value = row[name]
        if name == "address" and isinstance(value, str):
            value = json.loads(value)
        elif name == "date_of_birth" and value is not None:
            value = value.isoformat()
        fields[name] = value
    return fields, stamps


async def lock_for_sync(conn: asyncpg.Connection, patient_id: uuid.UUID) -> asyncpg.Record | None:
    """The stored row in any clinic (the caller checks scope), locked until commit."""
    return await conn.fetchrow("SELECT * FROM patients WHERE id = $1 FOR UPDATE", patient_id)


async def write_synced(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    clinic_id: uuid.UUID,
    values: dict[str, Any],
    field_hlcs: dict[str, str],
    hlc: str,
    exists: bool,
) -> int:
    """Store a merged state (typed values, ``deleted`` among them); returns the new version."""
    args = (
        patient_id,
        clinic_id,
        values["name"],
        values["gender"],
        values["year_of_birth"],
        values.get("date_of_birth"),
        values.get("mobile"),
        values.get("abha_number"),
        values.get("abha_address"),
        _json(values.get("address")),
        bool(values.get("deleted", False)),
        hlc,
        json.dumps(field_hlcs),
    )
    if not exists:
        sql = """
            INSERT INTO patients (id, clinic_id, name, gender, year_of_birth, date_of_birth, mobile, abha_number,
                                  abha_address, address, deleted, hlc, field_hlcs)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13::jsonb)
            RETURNING version
        """
    else:
        sql = """
            UPDATE patients SET name = $3, gender = $4, year_of_birth = $5, date_of_birth = $6, mobile = $7,
                   abha_number = $8, abha_address = $9, address = $10::jsonb, deleted = $11, hlc = $12,
                   field_hlcs = $13::jsonb, version = version + 1, updated_at = now()
            WHERE id = $1 AND clinic_id = $2
            RETURNING version
        """
    return int(await conn.fetchval(sql, *args))
