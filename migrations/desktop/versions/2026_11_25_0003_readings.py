"""Local wearable readings and known devices (filled in by P5).

Revision ID: 2026_11_25_0003
Revises: 2026_11_25_0002
Create Date: 2026-11-25

``readings`` is append-only: a value is inserted the moment it arrives (before it is decoded into anything
else), and ``natural_key`` (device id, characteristic, device time, sequence) is unique, so a repeated
notification or a re-downloaded stored record is stored once. ``known_devices`` are the paired devices.
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_11_25_0003"
down_revision = "2026_11_25_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_devices",
        sa.Column("address", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("services", sa.Text, nullable=False, server_default="[]"),
        sa.Column(
            "paired", sa.Integer, sa.CheckConstraint("paired IN (0, 1)"), nullable=False, server_default=sa.text("0")
        ),
        sa.Column("battery_percent", sa.Integer),
        sa.Column("added_at", sa.Text, nullable=False),
        sa.Column("last_seen_at", sa.Text),
    )
    op.create_table(
        "readings",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("natural_key", sa.Text, nullable=False, unique=True),
        sa.Column("device_address", sa.Text, nullable=False),
        sa.Column("device_name", sa.Text),
        sa.Column("characteristic", sa.Text, nullable=False),
        sa.Column("sequence", sa.Integer),
        sa.Column("device_time", sa.Text),
        sa.Column("measured_at", sa.Text, nullable=False),
        sa.Column("time_source", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text),
        sa.Column("encounter_id", sa.Text),
        sa.Column(
            "status",
            sa.Text,
            sa.CheckConstraint("status IN ('patient', 'unattached', 'excluded', 'undecodable')"),
            nullable=False,
        ),
        sa.Column("note", sa.Text),
        sa.Column("values", sa.Text, nullable=False, server_default="[]"),
        sa.Column("decoded", sa.Text),
        sa.Column("raw_hex", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("readings_patient", "readings", ["patient_id", "measured_at"])
    op.create_index("readings_device", "readings", ["device_address", "received_at"])
    op.create_index("readings_device_sequence", "readings", ["device_address", "characteristic", "sequence"])
    # append-only: a stored reading is never changed in place
    op.execute(
        "CREATE TRIGGER readings_append_only BEFORE UPDATE OF natural_key, device_address, characteristic, sequence, "
        "device_time, raw_hex, received_at ON readings BEGIN SELECT RAISE(ABORT, 'readings are append-only'); END"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER readings_append_only")
    op.drop_index("readings_device_sequence", "readings")
    op.drop_index("readings_device", "readings")
    op.drop_index("readings_patient", "readings")
    op.drop_table("readings")
    op.drop_table("known_devices")
