"""Encounters sync per field: each field's HLC stamp (header fields, SOAP sections, status/completed_at).

Revision ID: 2026_11_25_0009
Revises: 2026_11_25_0008
Create Date: 2026-11-25

``field_hlcs`` maps field name → stamp (`shared.sync.encounter_merge`); ``hlc`` (migration 0005) is the
greatest of them. Encounters written by the REST API before they were synced have none: their fields count
as stamped with ``hlc``. ``encounter_addenda.hlc`` is the stamp an addendum travels with (the pushing
change's, or for an addendum the server made from late edits, the greatest late stamp).
"""

from alembic import op

revision = "2026_11_25_0009"
down_revision = "2026_11_25_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE encounters ADD COLUMN field_hlcs jsonb")
    op.execute('ALTER TABLE encounter_addenda ADD COLUMN hlc text COLLATE "C"')


def downgrade() -> None:
    op.execute("ALTER TABLE encounter_addenda DROP COLUMN hlc")
    op.execute("ALTER TABLE encounters DROP COLUMN field_hlcs")
