"""Search indexes: name prefix within a clinic (text_pattern_ops) and mobile digit fragments (pg_trgm).

Revision ID: 2026_11_25_0003
Revises: 2026_11_25_0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "2026_11_25_0003"
down_revision = "2026_11_25_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Whole-name prefix, the commonest search at a front desk ("raj"): an index range scan in the clinic,
    # newest first, instead of scoring every trigram match (bench/server_patients.py, BENCHMARKS.md).
    op.execute("CREATE INDEX patients_clinic_name_prefix ON patients (clinic_id, lower(name) text_pattern_ops, id)")
    # The last digits of a mobile ("3210"): without this a LIKE '%…%' scans every row of the table.
    op.execute("CREATE INDEX patients_mobile_trgm ON patients USING gin (mobile gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX patients_mobile_trgm")
    op.execute("DROP INDEX patients_clinic_name_prefix")
