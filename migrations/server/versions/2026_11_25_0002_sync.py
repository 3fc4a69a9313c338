"""Sync: enrolled devices, per-field HLC stamps, per-clinic change feed, push idempotency, record history.

Revision ID: 2026_11_25_0002
Revises: 2026_11_25_0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "2026_11_25_0002"
down_revision = "2026_11_25_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # HLC stamps are compared as text: COLLATE "C" compares byte by byte, which is stamp order.
    op.execute(
        """
        ALTER TABLE patients
            ADD COLUMN hlc text COLLATE "C",
            ADD COLUMN field_hlcs jsonb NOT NULL DEFAULT '{}'::jsonb
        """
    )
    op.execute(
        """
        CREATE TABLE devices (
            id            uuid PRIMARY KEY,
            clinic_id     uuid NOT NULL REFERENCES clinics(id),
            name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            enrolled_by   uuid NOT NULL REFERENCES users(id),
            token_hash    bytea NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_seen_at  timestamptz,
            revoked_at    timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE feed_counters (
            clinic_id  uuid PRIMARY KEY REFERENCES clinics(id),
            last_seq   bigint NOT NULL DEFAULT 0
        )
        """
    )
    # One row per record: its latest position in its clinic's feed. A pull returns each changed record once,
    # in its current state.
    op.execute(
        """
        CREATE TABLE change_feed (
            clinic_id   uuid NOT NULL REFERENCES clinics(id),
            seq         bigint NOT NULL,
            kind        text NOT NULL,
            record_id   uuid NOT NULL,
            batch_id    uuid,
            PRIMARY KEY (clinic_id, seq),
            UNIQUE (kind, record_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE sync_batches (
            batch_id     uuid PRIMARY KEY,
            device_id    uuid NOT NULL REFERENCES devices(id),
            clinic_id    uuid NOT NULL REFERENCES clinics(id),
            response     jsonb NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE record_history (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            clinic_id        uuid NOT NULL REFERENCES clinics(id),
            kind             text NOT NULL,
            record_id        uuid NOT NULL,
            field            text NOT NULL,
            value            jsonb,
            hlc              text COLLATE "C",
            replaced_by_hlc  text COLLATE "C",
            lost             boolean NOT NULL,
            source           text,
            recorded_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX record_history_record ON record_history (kind, record_id, id)")
    op.execute("INSERT INTO feed_counters (clinic_id) SELECT id FROM clinics")
    # Patients registered before sync existed: stamp every field with the row's last update so they sync.
    op.execute(
        """
        UPDATE patients SET
            hlc = lpad(to_hex((extract(epoch FROM updated_at) * 1000)::bigint), 12, '0') || '-0000-migration',
            field_hlcs = (
                SELECT jsonb_object_agg(f, lpad(to_hex((extract(epoch FROM updated_at) * 1000)::bigint), 12, '0')
                                           || '-0000-migration')
                FROM unnest(ARRAY['name', 'gender', 'year_of_birth', 'date_of_birth', 'mobile', 'abha_number',
                                  'abha_address', 'address']) AS f
            )
        """
    )
    op.execute(
        """
        INSERT INTO change_feed (clinic_id, seq, kind, record_id)
        SELECT clinic_id, row_number() OVER (PARTITION BY clinic_id ORDER BY id), 'patient', id FROM patients
        """
    )
    op.execute(
        """
        UPDATE feed_counters c SET last_seq = coalesce((SELECT max(seq) FROM change_feed f
                                                         WHERE f.clinic_id = c.clinic_id), 0)
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE record_history")
    op.execute("DROP TABLE sync_batches")
    op.execute("DROP TABLE change_feed")
    op.execute("DROP TABLE feed_counters")
    op.execute("DROP TABLE devices")
    op.execute("ALTER TABLE patients DROP COLUMN field_hlcs, DROP COLUMN hlc")
