"""Bulk reading ingest: no stored content hash per reading row, no per-row foreign-key check on the feed,
stored push answers compressed by the server.

Revision ID: 2026_11_26_0013
Revises: 2026_11_26_0012
Create Date: 2026-11-26

* ``wearable_data.content_hash`` goes. It was only read when a pushed reading's id was already stored (a
  replay under a new batch id, or a changed reading): the push now compares the incoming reading with the
  stored one rebuilt from its rows (`sync_server.services.readings.stored_content_hashes`), so a batch of new
  readings no longer hashes every reading. Downgrade puts the column back, filled with the same hashes.
* ``change_feed``'s foreign key to ``clinics`` goes: a row trigger per feed entry (≈ 3 µs each, measured by
  ``bench/feed_write.py``; one entry per reading). The feed is written only by the server's sync code with the
  clinic of the authenticated caller (a row of ``clinics`` that is never deleted), inside the same
  transaction as the record it points to, whose own foreign keys are kept.
* ``sync_batches.response`` becomes ``bytea``: the answer's JSON compressed with zlib by the server
  (`sync_server.db.sync.store_batch`; ≈ 2 ms a 1000-change batch less than ``jsonb`` parsing plus
  PostgreSQL's own compression), stored out of line without a second compression attempt. Answers stored
  before stay as their plain JSON text (`batch_answer` reads both). Downgrade decompresses them back to ``jsonb``.
* ``wearable_daily_pending`` queues, per pushed batch, each patient's first and last reading time
  (``patient_ids``, ``firsts``, ``lasts``) instead of every (patient, metric, day) triple: the folder
  recomputes every day of each range, all metrics (`sync_server.db.wearables.queue_daily`; ≈ 4 ms a
  1000-reading batch less). Rows queued before are converted (each of their days becomes a one-day range);
  downgrade converts back, naming the metrics the patient has readings of on each day.
"""

import hashlib
import uuid
from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from typing import Any

from alembic import op
from sqlalchemy import text

revision = "2026_11_26_0013"
down_revision = "2026_11_26_0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE change_feed DROP CONSTRAINT change_feed_clinic_id_fkey")
    op.execute("ALTER TABLE wearable_data DROP COLUMN content_hash")
    op.execute("ALTER TABLE sync_batches ALTER COLUMN response TYPE bytea USING convert_to(response::text, 'UTF8')")
    op.execute("ALTER TABLE sync_batches ALTER COLUMN response SET STORAGE EXTERNAL")
    op.execute(
        "ALTER TABLE wearable_daily_pending DROP CONSTRAINT wearable_daily_pending_check,"
        " ADD COLUMN firsts timestamptz[], ADD COLUMN lasts timestamptz[]"
    )
    op.execute(
        """
        UPDATE wearable_daily_pending q SET patient_ids = c.patient_ids, firsts = c.starts, lasts = c.starts
        FROM (
            SELECT p.id, array_agg(u.patient_id ORDER BY u.patient_id, u.day) AS patient_ids,
                   array_agg(u.day::timestamp AT TIME ZONE z.value ORDER BY u.patient_id, u.day) AS starts
            FROM wearable_daily_pending p
            CROSS JOIN LATERAL (
                SELECT DISTINCT x.patient_id, x.day FROM unnest(p.patient_ids, p.days) AS x(patient_id, day)
            ) AS u
            CROSS JOIN wearable_settings z
            WHERE z.key = 'day_zone'
            GROUP BY p.id
        ) AS c
        WHERE q.id = c.id
        """
    )
    op.execute(
        """
        ALTER TABLE wearable_daily_pending
            DROP COLUMN metrics,
            DROP COLUMN days,
            ALTER COLUMN firsts SET NOT NULL,
            ALTER COLUMN lasts SET NOT NULL,
            ADD CONSTRAINT wearable_daily_pending_check
                CHECK (cardinality(patient_ids) = cardinality(firsts) AND cardinality(lasts) = cardinality(firsts))
        """
    )


def downgrade() -> None:
    import zlib

    op.execute(
        "ALTER TABLE wearable_daily_pending DROP CONSTRAINT wearable_daily_pending_check,"
        " ADD COLUMN metrics text[], ADD COLUMN days date[]"
    )
    op.execute(
        """
        UPDATE wearable_daily_pending q SET patient_ids = c.patient_ids, metrics = c.metrics, days = c.days
        FROM (
            SELECT p.id, array_agg(m.patient_id) AS patient_ids, array_agg(m.metric) AS metrics,
                   array_agg(m.day) AS days
            FROM wearable_daily_pending p
            CROSS JOIN LATERAL unnest(p.patient_ids, p.firsts, p.lasts) AS k(patient_id, first, last)
            CROSS JOIN wearable_settings z
            CROSS JOIN LATERAL generate_series(
                (k.first AT TIME ZONE z.value)::date::timestamp,
                (k.last AT TIME ZONE z.value)::date::timestamp,
                interval '1 day'
            ) AS d(day)
            CROSS JOIN LATERAL (
                SELECT DISTINCT k.patient_id, w.metric, d.day::date AS day FROM wearable_data w
                WHERE w.patient_id = k.patient_id AND w.time >= (d.day AT TIME ZONE z.value)
                  AND w.time < ((d.day + interval '1 day') AT TIME ZONE z.value)
            ) AS m
            WHERE z.key = 'day_zone'
            GROUP BY p.id
        ) AS c
        WHERE q.id = c.id
        """
    )
    op.execute("DELETE FROM wearable_daily_pending WHERE days IS NULL")  # ranges without a reading: nothing to fold
    op.execute(
        """
        ALTER TABLE wearable_daily_pending
            DROP COLUMN firsts,
            DROP COLUMN lasts,
            ALTER COLUMN metrics SET NOT NULL,
            ALTER COLUMN days SET NOT NULL,
            ADD CONSTRAINT wearable_daily_pending_check
                CHECK (cardinality(patient_ids) = cardinality(days) AND cardinality(metrics) = cardinality(days))
        """
    )

    bind = op.get_bind()
    for batch_id, data in bind.execute(text("SELECT batch_id, response FROM sync_batches")).all():
        if bytes(data)[:1] != b"{":
            plain = zlib.decompress(bytes(data))
            bind.execute(text("UPDATE sync_batches SET response = :r WHERE batch_id = :b"), {"r": plain, "b": batch_id})
    op.execute("ALTER TABLE sync_batches ALTER COLUMN response SET STORAGE EXTENDED")
    op.execute("ALTER TABLE sync_batches ALTER COLUMN response TYPE jsonb USING convert_from(response, 'UTF8')::jsonb")

    op.execute("ALTER TABLE wearable_data ADD COLUMN content_hash bytea")
    rows = bind.execute(text("SELECT * FROM wearable_data ORDER BY reading_id, value_index")).mappings().all()
    grouped: defaultdict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row["reading_id"]].append(row)
    for reading_id, hash_ in ((rid, _content_hash(group)) for rid, group in grouped.items()):
        bind.execute(
            text("UPDATE wearable_data SET content_hash = :h WHERE reading_id = :r"), {"h": hash_, "r": reading_id}
        )
    op.execute("ALTER TABLE wearable_data ALTER COLUMN content_hash SET NOT NULL")
    op.execute(
        "ALTER TABLE change_feed ADD CONSTRAINT change_feed_clinic_id_fkey FOREIGN KEY (clinic_id) REFERENCES clinics(id)"
    )


def _content_hash(rows: list[Any]) -> bytes:
    """The content hash revision 0012 stored for a reading, from its rows (in value order).

    A copy of the formula as it stood at this revision (``sync_server.services.readings._content_hash`` over the
    reading rebuilt from its rows), kept here so this downgrade does not depend on application code that may
    change later: every field in record order, ids as their 128-bit value (hex; the encounter's in decimal),
    texts as Python ``repr`` (None is not "None"), decimals as their text, times in ISO form in UTC.
    """
    first = rows[0]
    encounter = None if first["encounter_id"] is None else uuid.UUID(str(first["encounter_id"])).int

    def decimal(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    values = "|".join(
        f"{r['metric']!r},{decimal(r['value_text'])},{r['unit']!r},{r['ucum']!r},{decimal(r['original_value'])},"
        f"{r['original_unit']!r}"
        for r in rows
    )
    text_ = (
        f"{uuid.UUID(str(first['reading_id'])).int:x}|{uuid.UUID(str(first['patient_id'])).int:x}|{encounter}|"
        f"{first['device_id']!r}|{first['device_name']!r}|{first['characteristic']!r}|"
        f"{first['time'].astimezone(UTC).isoformat()}|{first['device_time']!r}|{first['time_source']!r}|"
        f"{first['sequence']!r}|{first['raw_hex']}|{first['received_at'].astimezone(UTC).isoformat()}|{values}"
    )
    return hashlib.sha256(text_.encode()).digest()
