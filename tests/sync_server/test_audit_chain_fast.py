"""`sync_server.db.audit.append_many` assembles each entry's canonical JSON from pieces and writes with COPY; the
hashes must be exactly `shared.audit.link_hash` over `entry_fields`, so the chain verifies."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.audit import GENESIS, link_hash
from shared.ids import uuid7
from sync_server.db import audit as audit_db
from sync_server.services import audit as audit_service
from tests.helpers import pg

# Any Unicode but NUL (PostgreSQL text cannot hold it) and lone surrogates (not UTF-8, refused before as now).
_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_entry = st.fixed_dictionaries(
    {"action": _text, "entity_type": _text, "entity_id": st.none() | _text},
    optional={"details": st.dictionaries(_text, _json_value, max_size=4)},
)


async def _append_and_read(
    dsn: str, clinic_id: uuid.UUID, meta: dict[str, Any], batches: list[list[dict[str, Any]]]
) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        for entries in batches:
            async with conn.transaction():
                await audit_db.append_many(conn, clinic_id=clinic_id, entries=entries, **meta)
        rows = await audit_db.chain_entries(conn, clinic_id)
        return rows
    finally:
        await conn.close()


async def _clinic(dsn: str) -> uuid.UUID:
    clinic_id = uuid7()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO clinics (id, name, hfr_id, state, address) VALUES ($1, 'Audit Clinic', $2, 'Goa', 'Panaji')",
            clinic_id,
            f"IN{clinic_id.int % 10**10:010d}",
        )
    finally:
        await conn.close()
    return clinic_id


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(_entry, min_size=1, max_size=4), min_size=1, max_size=3),
    actor_role=st.none() | _text,
    client_ip=st.none() | _text,
    user_agent=st.none() | _text,
    with_actor=st.booleans(),
)
def test_batched_entries_hash_like_link_hash_and_the_chain_verifies(
    db_url: str,
    batches: list[list[dict[str, Any]]],
    actor_role: str | None,
    client_ip: str | None,
    user_agent: str | None,
    with_actor: bool,
) -> None:
    clinic_id = pg.run(_clinic(db_url))
    meta = {
        "actor_id": uuid7() if with_actor else None,
        "actor_role": actor_role,
        "client_ip": client_ip,
        "user_agent": user_agent,
    }
    rows = pg.run(_append_and_read(db_url, clinic_id, meta, batches))
    flat = [e for batch in batches for e in batch]
    assert [r["seq"] for r in rows] == list(range(1, len(flat) + 1))
    prev = GENESIS
    for row, entry in zip(rows, flat, strict=True):
        fields = audit_db.entry_fields(
            seq=row["seq"],
            at=row["at"],
            clinic_id=clinic_id,
            action=entry["action"],
            entity_type=entry["entity_type"],
            entity_id=entry["entity_id"],
            details=entry.get("details") or {},
            **meta,
        )
        assert row["prev_hash"] == prev
        assert row["hash"] == link_hash(prev, fields)
        assert (row["action"], row["entity_id"], row["client_ip"]) == (entry["action"], entry["entity_id"], client_ip)
        prev = row["hash"]

    async def verify() -> Any:
        conn = await asyncpg.connect(db_url)
        try:
            return await audit_service.verify_all(conn)
        finally:
            await conn.close()

    assert pg.run(verify())[clinic_id] == (len(flat), None)


def test_repeated_actions_and_details_hash_and_store_like_single_entries(db_url: str) -> None:
    # append_many keeps the encodings of repeated actions and all-text details for the call; equal-but-different
    # values (1 and True, "1" and 1) must still hash and store as their own JSON.
    clinic_id = pg.run(_clinic(db_url))
    meta = {"actor_id": uuid7(), "actor_role": "device", "client_ip": "127.0.0.1", "user_agent": "pc"}
    details: list[dict[str, Any]] = [
        {"status": "applied", "batch": "b1"},
        {"status": "applied", "batch": "b1"},
        {"batch": "b1", "status": "applied"},
        {"status": "merged", "batch": "b1"},
        {"n": 1},
        {"n": True},
        {"n": "1"},
        {"n": 1},
        {},
        {"status": "applied", "batch": "b1"},
    ]
    entries = [
        {"action": "sync.patient.upsert", "entity_type": "patient", "entity_id": str(uuid7()), "details": d}
        for d in details
    ]
    rows = pg.run(_append_and_read(db_url, clinic_id, meta, [entries]))
    prev = GENESIS
    for row, entry in zip(rows, entries, strict=True):
        fields = audit_db.entry_fields(
            seq=row["seq"], at=row["at"], clinic_id=clinic_id, action=entry["action"],
            entity_type=entry["entity_type"], entity_id=entry["entity_id"], details=entry["details"], **meta,
        )  # fmt: skip
        assert row["hash"] == link_hash(prev, fields)
        assert json.loads(row["details"]) == entry["details"]
        assert [type(v) for v in json.loads(row["details"]).values()] == [type(v) for v in entry["details"].values()]
        prev = row["hash"]
