"""Doctor keys, signed prescriptions, status events, revocations and stored FHIR bundles (SQL only)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from sync_server.db import prescriptions as prescriptions_db

# The draft's columns as db/prescriptions reads them (so a column added there is read, and decoded, here
# too), plus the signing columns.
_RX_COLUMNS = prescriptions_db._COLUMNS + ", signed_at, content_hash, signature, cose, qr_payload, signer_kid"
_KEY_COLUMNS = (
    "kid, user_id, clinic_id, public_key, private_key_enc, held_by, certificate, issuer_kid, not_before, "
    "not_after, created_at, revoked_at, revocation_reason"
)


def _rx(row: asyncpg.Record) -> dict[str, Any]:
    return prescriptions_db.to_dict(row)


# --- prescriptions ---------------------------------------------------------------------------------------


async def lock_prescription(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, prescription_id: uuid.UUID
) -> dict[str, Any] | None:
    """The prescription with its signing columns, row-locked until commit.

    FOR UPDATE serialises two concurrent sign (or status) requests for one prescription: the second waits,
    then sees the first one's signature and answers it idempotently instead of signing twice.
    """
    row = await conn.fetchrow(
        f"SELECT {_RX_COLUMNS} FROM prescriptions WHERE id = $1 AND clinic_id = $2 FOR UPDATE",
        prescription_id,
        clinic_id,
    )
    return _rx(row) if row else None


async def get_prescription(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, prescription_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_RX_COLUMNS} FROM prescriptions WHERE id = $1 AND clinic_id = $2",
        prescription_id,
        clinic_id,
    )
    return _rx(row) if row else None


async def prescription_status(conn: asyncpg.Connection, clinic_id: uuid.UUID, prescription_id: uuid.UUID) -> str | None:
    """'draft' or 'signed', None when no such prescription in the clinic."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT status FROM prescriptions WHERE id = $1 AND clinic_id = $2", prescription_id, clinic_id
    )


async def mark_signed(
    conn: asyncpg.Connection,
    prescription_id: uuid.UUID,
    *,
    signed_at: datetime,
    content_hash: str,
    signature: bytes,
    cose: bytes,
    qr_payload: str,
    signer_kid: str,
) -> dict[str, Any]:
    """Freeze a draft as signed (the trigger refuses any later change to the row)."""
    row = await conn.fetchrow(
        f"""
        UPDATE prescriptions
           SET status = 'signed', signed_at = $2, content_hash = $3, signature = $4, cose = $5,
               qr_payload = $6, signer_kid = $7, updated_at = $2
         WHERE id = $1 AND status = 'draft'
        RETURNING {_RX_COLUMNS}
        """,
        prescription_id,
        signed_at,
        content_hash,
        signature,
        cose,
        qr_payload,
        signer_kid,
    )
    if row is None:
        raise LookupError(f"prescription {prescription_id} is not a draft any more")
    return _rx(row)


async def signing_facts(conn: asyncpg.Connection, clinic_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record | None:
    """What a doctor certificate and a signed prescription say about the signer and the clinic."""
    return await conn.fetchrow(
        """
        SELECT u.id, u.name, u.hpr_id, u.hpr_address, u.qualification, u.system_of_medicine,
               u.registration_council, u.registration_number, u.state, u.role, u.active,
               c.id AS clinic_id, c.name AS clinic_name, c.hfr_id AS clinic_hfr_id, c.address AS clinic_address
          FROM users u JOIN clinics c ON c.id = u.clinic_id
         WHERE u.id = $1 AND u.clinic_id = $2
        """,
        user_id,
        clinic_id,
    )


async def patient_facts(conn: asyncpg.Connection, clinic_id: uuid.UUID, patient_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        SELECT id, name, gender, year_of_birth, date_of_birth, abha_number, abha_address
          FROM patients WHERE id = $1 AND clinic_id = $2
        """,
        patient_id,
        clinic_id,
    )
    if row is None:  # the prescription's foreign key makes this a bug, not an input error
        raise LookupError(f"patient {patient_id} of a prescription is missing")
    return row


# --- doctor keys -----------------------------------------------------------------------------------------


async def lock_user_keys(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Serialise key creation for one user until commit, so two first signs create one key, not two."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 11))", str(user_id))


async def insert_key(
    conn: asyncpg.Connection,
    *,
    kid: str,
    user_id: uuid.UUID,
    clinic_id: uuid.UUID,
    public_key: bytes,
    private_key_enc: bytes | None,
    certificate: bytes,
    issuer_kid: str,
    not_before: datetime,
    not_after: datetime,
) -> asyncpg.Record | None:
    """Store a certified key; None when this kid is already stored (the same public key certified twice)."""
    return await conn.fetchrow(
        f"""
        INSERT INTO doctor_keys (kid, user_id, clinic_id, public_key, private_key_enc, held_by, certificate,
                                 issuer_kid, not_before, not_after)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (kid) DO NOTHING
        RETURNING {_KEY_COLUMNS}
        """,
        kid,
        user_id,
        clinic_id,
        public_key,
        private_key_enc,
        "server" if private_key_enc is not None else "desktop",
        certificate,
        issuer_kid,
        not_before,
        not_after,
    )


async def live_server_key(
    conn: asyncpg.Connection, user_id: uuid.UUID, at: datetime, issuer_kid: str
) -> asyncpg.Record | None:
    """The newest server-held key of the user, certified by ``issuer_kid``, unrevoked and valid at ``at``."""
    return await conn.fetchrow(
        f"""
        SELECT {_KEY_COLUMNS} FROM doctor_keys
         WHERE user_id = $1 AND held_by = 'server' AND issuer_kid = $3 AND revoked_at IS NULL
           AND not_before <= $2 AND not_after > $2
         ORDER BY created_at DESC
         LIMIT 1
        """,
        user_id,
        at,
        issuer_kid,
    )


async def get_key(conn: asyncpg.Connection, kid: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM doctor_keys WHERE kid = $1", kid)


async def keys_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(f"SELECT {_KEY_COLUMNS} FROM doctor_keys WHERE user_id = $1 ORDER BY created_at", user_id)
    )


async def revoke_key(
    conn: asyncpg.Connection,
    *,
    kid: str,
    clinic_id: uuid.UUID,
    revoked_at: datetime,
    reason: str,
    revoked_by: uuid.UUID,
) -> bool:
    """Record a revocation (key row + append-only list); False when the key was already revoked."""
    updated = await conn.fetchval(
        """
        UPDATE doctor_keys SET revoked_at = $2, revocation_reason = $3
         WHERE kid = $1 AND revoked_at IS NULL
        RETURNING kid
        """,
        kid,
        revoked_at,
        reason,
    )
    if updated is None:
        return False
    await conn.execute(
        """
        INSERT INTO signing_revocations (kid, clinic_id, revoked_at, reason, revoked_by)
        VALUES ($1, $2, $3, $4, $5)
        """,
        kid,
        clinic_id,
        revoked_at,
        reason,
        revoked_by,
    )
    return True


async def revocations(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every revocation, oldest first (the list is global: a verifier anywhere needs all of them)."""
    return list(await conn.fetch("SELECT seq, kid, revoked_at, reason FROM signing_revocations ORDER BY seq"))


# --- status events ---------------------------------------------------------------------------------------


async def status_events(conn: asyncpg.Connection, prescription_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT id, seq, status, reason, at, actor_id, signer_kid, cose
              FROM prescription_status_events WHERE prescription_id = $1 ORDER BY seq
            """,
            prescription_id,
        )
    )


async def insert_status_event(
    conn: asyncpg.Connection,
    *,
    event_id: uuid.UUID,
    prescription_id: uuid.UUID,
    clinic_id: uuid.UUID,
    seq: int,
    status: str,
    reason: str,
    at: datetime,
    actor_id: uuid.UUID,
    signer_kid: str,
    cose: bytes,
) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        INSERT INTO prescription_status_events (id, prescription_id, clinic_id, seq, status, reason, at, actor_id,
                                                signer_kid, cose)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING id, seq, status, reason, at, actor_id, signer_kid, cose
        """,
        event_id,
        prescription_id,
        clinic_id,
        seq,
        status,
        reason,
        at,
        actor_id,
        signer_kid,
        cose,
    )


# --- FHIR ------------------------------------------------------------------------------------------------


async def store_fhir_bundle(
    conn: asyncpg.Connection,
    *,
    resource_id: uuid.UUID,
    clinic_id: uuid.UUID,
    resource_type: str,
    source_id: str,
    bundle: dict[str, Any],
) -> uuid.UUID:
    """Store a FHIR bundle built for ABDM once per (clinic, type, source record); the stored row's id.

    A signed prescription's bundle never changes, so a second store of the same source keeps the first one
    (a retried sign stays idempotent).
    """
    stored = await conn.fetchval(
        """
        INSERT INTO fhir_resources (id, clinic_id, resource_type, resource_id, bundle)
        VALUES ($1, $2, $3, $4, $5::jsonb)
        ON CONFLICT (clinic_id, resource_type, resource_id) DO NOTHING
        RETURNING id
        """,
        resource_id,
        clinic_id,
        resource_type,
        source_id,
        json.dumps(bundle),
    )
    if stored is not None:
        return stored  # type: ignore[no-any-return]
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT id FROM fhir_resources WHERE clinic_id = $1 AND resource_type = $2 AND resource_id = $3",
        clinic_id,
        resource_type,
        source_id,
    )


async def fhir_bundle(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, resource_type: str, source_id: str
) -> dict[str, Any] | None:
    text = await conn.fetchval(
        "SELECT bundle FROM fhir_resources WHERE clinic_id = $1 AND resource_type = $2 AND resource_id = $3",
        clinic_id,
        resource_type,
        source_id,
    )
    return json.loads(text) if text is not None else None


# --- status events arriving by sync (services.rx_sync) -----------------------------------------------------


async def status_event_by_id(conn: asyncpg.Connection, event_id: uuid.UUID) -> asyncpg.Record | None:
    """A stored status event with its clinic (a replay of a pushed event finds it here)."""
    return await conn.fetchrow(
        "SELECT id, prescription_id, clinic_id, seq, status, cose FROM prescription_status_events WHERE id = $1",
        event_id,
    )


async def lock_for_status(conn: asyncpg.Connection, prescription_id: uuid.UUID) -> asyncpg.Record | None:
    """The prescription a pushed status event is about, row-locked until commit (any clinic: the caller checks).

    The lock serialises it with `record_status` and other pushes, so seq and the terminal rule hold.
    """
    return await conn.fetchrow(
        """
        SELECT id, clinic_id, prescriber_id, status, content_hash FROM prescriptions WHERE id = $1 FOR UPDATE
        """,
        prescription_id,
    )


async def key_for_status(conn: asyncpg.Connection, kid: str) -> asyncpg.Record | None:
    """The certified doctor key a status event names."""
    return await conn.fetchrow(
        "SELECT kid, user_id, clinic_id, held_by, certificate, issuer_kid FROM doctor_keys WHERE kid = $1", kid
    )


async def status_event_rows(conn: asyncpg.Connection, event_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """Status events with their signer's certificate, for the pull feed."""
    return list(
        await conn.fetch(
            """
            SELECT e.id, e.prescription_id, e.seq, e.status, e.reason, e.at, e.signer_kid, e.cose, k.certificate
              FROM prescription_status_events e JOIN doctor_keys k ON k.kid = e.signer_kid
             WHERE e.id = ANY($1::uuid[])
            """,
            event_ids,
        )
    )
