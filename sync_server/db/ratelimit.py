"""Sliding-window rate limits kept in PostgreSQL, so every API replica sees the same counts."""

from __future__ import annotations

import asyncpg


async def hit(conn: asyncpg.Connection, bucket: str, *, limit: int, window_s: int) -> float | None:
    """Record one request in ``bucket`` unless the bucket is full.

    Returns:
        None when allowed (and recorded); otherwise the seconds until the oldest hit leaves the window.
    """
    # Serialise hits on the same bucket so two concurrent requests cannot both take the last slot.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))", bucket)
    row = await conn.fetchrow(
        """
        SELECT count(*) AS n, min(at) AS oldest
        FROM rate_limit_hits
        WHERE bucket = $1 AND at > clock_timestamp() - make_interval(secs => $2)
        """,
        bucket,
        window_s,
    )
    if row["n"] >= limit:
        wait = await conn.fetchval(
            "SELECT extract(epoch FROM $1::timestamptz + make_interval(secs => $2) - clock_timestamp())::float8",
            row["oldest"],
            window_s,
        )
        return max(1.0, float(wait))
    await conn.execute("INSERT INTO rate_limit_hits (bucket) VALUES ($1)", bucket)
    return None


async def prune(conn: asyncpg.Connection, *, older_than_s: int) -> int:
    status = await conn.execute(
        "DELETE FROM rate_limit_hits WHERE at < clock_timestamp() - make_interval(secs => $1)", older_than_s
    )
    return int(status.split()[-1])
