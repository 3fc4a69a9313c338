"""Wearable readings time series and daily averages.

``wearable_data`` holds one row per metric of each synced device reading (`shared.records.reading`), with
the reading's own fields repeated on each row so the pull feed can rebuild the record. Its layout is chosen
here, at upgrade time, and recorded in ``wearable_settings`` (key ``time_series``):

* ``timescaledb`` when ``CREATE EXTENSION IF NOT EXISTS timescaledb`` succeeds: a hypertable with monthly
  chunks, and ``wearable_daily_avg`` a view over a continuous aggregate (refreshed by a policy every 15
  minutes, real-time for the newest data). NOT EXERCISED by the test suite: the embedded PostgreSQL has no
  TimescaleDB.
* ``native_partitions`` otherwise: declarative partitioning BY RANGE (time), one partition per UTC month,
  created for the previous, current and next three months here and on demand for any month a batch needs
  (``wearable_ensure_partitions``), and ``wearable_daily_avg`` a table the ingest keeps up to date by
  recomputing every (patient, metric, day) a batch touched.

Either way ``wearable_daily_avg`` has the same columns; ``day`` is the clinic-local calendar day in the zone
recorded under ``day_zone`` (Asia/Kolkata: every clinic is in India, IST has no DST).

Dedupe: both unique constraints include the partition key ``time`` (a partitioned table's and a hypertable's
unique indexes must): one per (reading id, metric), one per natural key (device, characteristic, device
time or measured_at, sequence) and metric.

Revision ID: 2026_11_25_0007
Revises: 2026_11_25_0006
Create Date: 2026-11-25
"""

from alembic import op
from sqlalchemy import text

revision = "2026_11_25_0007"
down_revision = "2026_11_25_0006"
branch_labels = None
depends_on = None

DAY_ZONE = "Asia/Kolkata"

_COLUMNS = """
    time            timestamptz NOT NULL,
    clinic_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    reading_id      uuid NOT NULL,
    value_index     smallint NOT NULL,
    metric          text NOT NULL,
    value           double precision NOT NULL,
    value_text      text NOT NULL,
    unit            text NOT NULL,
    ucum            text NOT NULL,
    original_value  text,
    original_unit   text,
    device_id       text NOT NULL,
    device_name     text,
    characteristic  text NOT NULL,
    sequence        integer,
    device_time     text,
    time_source     text NOT NULL,
    key_time        text NOT NULL,
    key_seq         integer NOT NULL,
    encounter_id    uuid,
    raw_hex         text NOT NULL,
    received_at     timestamptz NOT NULL,
    content_hash    bytea NOT NULL,
    hlc             text COLLATE "C" NOT NULL,
    batch_id        uuid,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wearable_data_reading_metric UNIQUE (reading_id, metric, time),
    CONSTRAINT wearable_data_natural_key UNIQUE (device_id, characteristic, key_time, key_seq, metric, time)
"""


def _timescale_available() -> bool:
    bind = op.get_bind()
    available = bind.execute(
        text("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).scalar_one()
    if not available:
        return False
    savepoint = bind.begin_nested()
    try:
        bind.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except Exception:  # not preloaded (shared_preload_libraries), no privilege, ...: fall back
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def upgrade() -> None:
    timescale = _timescale_available()
    op.execute("CREATE TABLE wearable_settings (key text PRIMARY KEY, value text NOT NULL)")
    op.execute(
        f"""
        INSERT INTO wearable_settings (key, value) VALUES
            ('time_series', '{"timescaledb" if timescale else "native_partitions"}'), ('day_zone', '{DAY_ZONE}')
        """
    )
    if timescale:
        _upgrade_timescale()
    else:
        _upgrade_native()
    op.execute("CREATE INDEX wearable_data_patient ON wearable_data (patient_id, metric, time)")
    # `wearable_prepare(months)`: the layout and the day zone, after making sure the partitions of these months
    # exist (native path) and this session's staging table for COPY exists; one round trip per ingested batch.
    op.execute(
        """
        CREATE FUNCTION wearable_prepare(months timestamptz[]) RETURNS TABLE (mode text, day_zone text)
        LANGUAGE plpgsql AS $$
        BEGIN
            mode := (SELECT value FROM wearable_settings WHERE key = 'time_series');
            day_zone := (SELECT value FROM wearable_settings WHERE key = 'day_zone');
            PERFORM wearable_ensure_partitions(months);
            IF to_regclass('pg_temp.wearable_staging') IS NULL THEN
                CREATE TEMP TABLE wearable_staging (LIKE wearable_data INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
            END IF;
            RETURN NEXT;
        END $$
        """
    )


def _upgrade_native() -> None:
    op.execute(f"CREATE TABLE wearable_data ({_COLUMNS}) PARTITION BY RANGE (time)")
    op.execute(
        """
        CREATE FUNCTION wearable_ensure_partitions(months timestamptz[]) RETURNS integer LANGUAGE plpgsql AS $$
        DECLARE
            m timestamptz;
            name text;
            made integer := 0;
        BEGIN
            FOR m IN SELECT DISTINCT date_trunc('month', t, 'UTC') FROM unnest(months) AS t LOOP
                name := 'wearable_data_p' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
                IF to_regclass(name) IS NULL THEN
                    BEGIN
                        EXECUTE format(
                            'CREATE TABLE %I PARTITION OF wearable_data FOR VALUES FROM (%L) TO (%L)',
                            name, m, m + interval '1 month'
                        );
                        made := made + 1;
                    EXCEPTION WHEN duplicate_table THEN
                        NULL;  -- made meanwhile by a concurrent ingest
                    END;
                END IF;
            END LOOP;
            RETURN made;
        END $$
        """
    )
    op.execute(
        """
        SELECT wearable_ensure_partitions(array(
            SELECT date_trunc('month', now(), 'UTC') + make_interval(months => k) FROM generate_series(-1, 3) AS k
        ))
        """
    )
    op.execute(
        """
        CREATE TABLE wearable_daily_avg (
            clinic_id   uuid NOT NULL,
            patient_id  uuid NOT NULL,
            metric      text NOT NULL,
            day         date NOT NULL,
            avg         double precision NOT NULL,
            min         double precision NOT NULL,
            max         double precision NOT NULL,
            count       bigint NOT NULL,
            unit        text NOT NULL,
            PRIMARY KEY (patient_id, metric, day)
        )
        """
    )
    op.execute("CREATE INDEX wearable_daily_avg_patient_day ON wearable_daily_avg (patient_id, day)")


def _upgrade_timescale() -> None:  # pragma: no cover - the embedded PostgreSQL has no TimescaleDB
    op.execute(f"CREATE TABLE wearable_data ({_COLUMNS})")
    op.execute("SELECT create_hypertable('wearable_data', 'time', chunk_time_interval => INTERVAL '1 month')")
    # Chunks are made by TimescaleDB itself; the ingest calls this on both paths.
    op.execute(
        """
        CREATE FUNCTION wearable_ensure_partitions(months timestamptz[]) RETURNS integer LANGUAGE sql AS
        $$ SELECT 0 $$
        """
    )
    op.execute(
        f"""
        CREATE MATERIALIZED VIEW wearable_daily_avg_cagg WITH (timescaledb.continuous) AS
        SELECT clinic_id, patient_id, metric, unit,
               time_bucket(INTERVAL '1 day', time, '{DAY_ZONE}') AS bucket,
               avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
        FROM wearable_data
        GROUP BY clinic_id, patient_id, metric, unit, bucket
        WITH NO DATA
        """
    )
    op.execute("ALTER MATERIALIZED VIEW wearable_daily_avg_cagg SET (timescaledb.materialized_only = false)")
    # start_offset NULL: the whole range is refreshed where late readings invalidated it.
    op.execute(
        """
        SELECT add_continuous_aggregate_policy('wearable_daily_avg_cagg',
            start_offset => NULL, end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes')
        """
    )
    op.execute(
        f"""
        CREATE VIEW wearable_daily_avg AS
        SELECT clinic_id, patient_id, metric, (bucket AT TIME ZONE '{DAY_ZONE}')::date AS day,
               avg, min, max, count, unit
        FROM wearable_daily_avg_cagg
        """
    )


def downgrade() -> None:
    bind = op.get_bind()
    mode = bind.execute(text("SELECT value FROM wearable_settings WHERE key = 'time_series'")).scalar_one_or_none()
    op.execute("DROP FUNCTION IF EXISTS wearable_prepare(timestamptz[])")
    op.execute("DROP FUNCTION IF EXISTS wearable_ensure_partitions(timestamptz[])")
    if mode == "timescaledb":  # pragma: no cover
        op.execute("DROP VIEW IF EXISTS wearable_daily_avg")
        op.execute("DROP MATERIALIZED VIEW IF EXISTS wearable_daily_avg_cagg")
    else:
        op.execute("DROP TABLE IF EXISTS wearable_daily_avg")
    op.execute("DROP TABLE IF EXISTS wearable_data")  # drops every partition / chunk with it
    op.execute("DROP TABLE wearable_settings")
    # the timescaledb extension is left installed: other objects may use it, and dropping it needs a superuser
