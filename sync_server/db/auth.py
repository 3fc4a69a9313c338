"""Sign-in transactions, sessions and refresh tokens."""

from __future__ import annotations

import uuid

import asyncpg


async def insert_txn(
    conn: asyncpg.Connection,
    *,
    txn_id: uuid.UUID,
    mobile: str,
    hpr_txn_id: str,
    ttl_s: int,
    client_ip: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO auth_txns (id, mobile, hpr_txn_id, expires_at, client_ip)
        VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
        """,
        txn_id,
        mobile,
        hpr_txn_id,
        ttl_s,
        client_ip,
    )


async def lock_txn(conn: asyncpg.Connection, txn_id: uuid.UUID) -> asyncpg.Record | None:
    """The txn row, locked until commit: concurrent verifies of one txn queue up (attempt counting)."""
    return await conn.fetchrow(
        "SELECT *, expires_at < now() AS expired FROM auth_txns WHERE id = $1 FOR UPDATE", txn_id
    )


async def record_failure(conn: asyncpg.Connection, txn_id: uuid.UUID, *, max_attempts: int) -> int:
    """Count a wrong OTP; the txn dies at ``max_attempts``. Returns the attempts left."""
    attempts = await conn.fetchval(
        """
        UPDATE auth_txns SET attempts = attempts + 1,
               state = CASE WHEN attempts + 1 >= $2 THEN 'dead' ELSE state END
        WHERE id = $1 RETURNING attempts
        """,
        txn_id,
        max_attempts,
    )
    return max(0, max_attempts - int(attempts))


async def close_txn(conn: asyncpg.Connection, txn_id: uuid.UUID, state: str) -> None:
    await conn.execute("UPDATE auth_txns SET state = $2 WHERE id = $1", txn_id, state)


async def insert_session(
    conn: asyncpg.Connection,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    clinic_id: uuid.UUID,
    ttl_s: int,
    client_ip: str | None,
    user_agent: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO auth_sessions (id, user_id, clinic_id, expires_at, client_ip, user_agent)
        VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6)
        """,
        session_id,
        user_id,
        clinic_id,
        ttl_s,
        client_ip,
        user_agent,
    )


async def insert_refresh(conn: asyncpg.Connection, token_hash: bytes, session_id: uuid.UUID) -> None:
    await conn.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", token_hash, session_id)


async def lock_refresh(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT r.token_hash, r.used_at, s.id AS session_id, s.user_id, s.clinic_id, s.revoked_at,
               s.expires_at < now() AS expired
        FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id
        WHERE r.token_hash = $1
        FOR UPDATE OF r, s
        """,
        token_hash,
    )


async def mark_refresh_used(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", token_hash)


async def revoke_session(conn: asyncpg.Connection, session_id: uuid.UUID, why: str) -> None:
    await conn.execute(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_why = $2 WHERE id = $1 AND revoked_at IS NULL",
        session_id,
        why,
    )


async def session_state(conn: asyncpg.Connection, session_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT s.revoked_at, s.expires_at < now() AS expired, u.active, u.role, u.clinic_id
        FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1
        """,
        session_id,
    )
