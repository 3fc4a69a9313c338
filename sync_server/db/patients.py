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
    actor_id: uuid.UUID,
    fields: dict[str, Any],
) -> dict[str, Any] | None:
    """Insert; returns None when the id is already taken (in any clinic: ids are global)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO patients (id, clinic_id, name, gender, year_of_birth, date_of_birth, mobile,
                              abha_number, abha_address, address, created_by, updated_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $11)
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
    actor_id: uuid.UUID,
    changes: dict[str, Any],
) -> dict[str, Any]:
    cols = [c for c in MUTABLE if c in changes]
    sets = ", ".join(f"{c} = ${i + 4}{'::jsonb' if c == 'address' else ''}" for i, c in enumerate(cols))
    values = [_json(changes[c]) if c == "address" else changes[c] for c in cols]
    row = await conn.fetchrow(
        f"""
        UPDATE patients SET {sets}, version = version + 1, updated_at = now(), updated_by = $3
        WHERE id = $1 AND clinic_id = $2
        RETURNING {_COLUMNS}
        """,
        patient_id,
        clinic_id,
        actor_id,
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


async def search(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    *,
    kind: str,
    term: str | None,
    limit: int,
    after: tuple[float, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """One page of search results ordered by (score desc, id desc); keyset pagination on that pair.

    ``kind`` is what the term was recognised as: ``all`` (no term), ``abha_number``, ``abha_address``,
    ``mobile`` (full E.164), ``mobile_part`` (digits) or ``name``.
    """
    score_sql = {
        "all": "0::float8",
        "abha_number": "1::float8",
        "abha_address": "1::float8",
        "mobile": "1::float8",
        "mobile_part": "1::float8",
        # Prefix of the whole name beats prefix of any word beats fuzzy similarity.
        "name": (
            "(CASE WHEN lower(name) LIKE $2 || '%' THEN 2 WHEN lower(name) LIKE '% ' || $2 || '%' THEN 1.5"
            " ELSE 0 END + word_similarity($2, lower(name)))::float8"
        ),
    }[kind]
    where = {
        "all": "length($2::text) >= 0",  # binds $2 so every kind takes the same parameters
        "abha_number": "abha_number = $2",
        "abha_address": "abha_address = $2",
        "mobile": "mobile = $2",
        "mobile_part": "mobile LIKE '%' || $2 || '%'",
        "name": "(lower(name) LIKE '%' || $2 || '%' OR $2 <% lower(name))",
    }[kind]
    args: list[Any] = [clinic_id, term or ""]
    keyset = ""
    if after is not None:
        keyset = f"AND ({score_sql}, id) < ($3::float8, $4::uuid)"
        args += [after[0], after[1]]
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, {score_sql} AS score FROM patients
        WHERE clinic_id = $1 AND NOT deleted AND {where} {keyset}
        ORDER BY score DESC, id DESC
        LIMIT {int(limit)}
        """,
        *args,
    )
    return [to_dict(r) for r in rows]
