"""Daily wearable averages folded in the background: the queue of (patient, metric, day) keys to refresh.

Revision ID: 2026_11_26_0011
Revises: 2026_11_25_0009
Create Date: 2026-11-26

On the native-partition path a push no longer updates ``wearable_daily_avg`` itself: in the same transaction
as the readings' rows it queues ONE row per batch naming the (patient, metric, clinic-local day) triples
it stored readings for (three parallel arrays: a day is recomputed per metric, through the patient index
(patient_id, metric, time)). `sync_server.services.readings.fold_daily` (a background task of the
API process, also run before a health-graph page for the patient it shows) recomputes those whole days
from ``wearable_data`` and deletes the queue rows it folded. A late reading for an old day queues that day
like any other, so the day is recomputed with it. Under TimescaleDB the continuous aggregate does this and
nothing is queued.

Rows queued before this migration: none (the previous ingest kept the averages up to date synchronously).
"""

from alembic import op

revision = "2026_11_26_0011"
down_revision = "2026_11_26_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE wearable_daily_pending (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            clinic_id   uuid NOT NULL,
            patient_ids uuid[] NOT NULL,
            metrics     text[] NOT NULL,
            days        date[] NOT NULL,
            queued_at   timestamptz NOT NULL DEFAULT now(),
            CHECK (cardinality(patient_ids) = cardinality(days) AND cardinality(metrics) = cardinality(days))
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE wearable_daily_pending")
