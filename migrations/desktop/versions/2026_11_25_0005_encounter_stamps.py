"""Encounters sync: each synced field's HLC stamp on the PC (header fields, SOAP sections, status).

Revision ID: 2026_11_25_0005
Revises: 2026_11_25_0004
Create Date: 2026-11-25

``field_hlcs`` maps field name → stamp (`shared.sync.encounter_merge`), as ``patients.field_hlcs`` does.
Encounters written before this revision have none: they were never queued for sync, and their fields count
as stamped before any other edit.
"""

from alembic import op

revision = "2026_11_25_0005"
down_revision = "2026_11_25_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN does not touch the completed-encounter triggers (they fire on UPDATE, not on schema change).
    op.execute("ALTER TABLE encounters ADD COLUMN field_hlcs TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(field_hlcs))")


def downgrade() -> None:
    op.execute("ALTER TABLE encounters DROP COLUMN field_hlcs")
