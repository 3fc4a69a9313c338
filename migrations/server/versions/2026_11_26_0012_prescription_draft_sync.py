"""Prescription drafts sync: each draft's HLC stamps, tombstone, typed lines and version.

Revision ID: 2026_11_26_0012
Revises: 2026_11_25_0009
Create Date: 2026-11-26

``field_hlcs`` maps field name → stamp (`shared.sync.prescription_merge`); ``hlc`` is the greatest of them.
Drafts written by the REST API before this revision have none: their fields count as stamped with the
server's stamp of ``updated_at`` when they are first pulled. ``lines`` and ``kb_version`` are what the
desktop's Rx pad typed and checked against (null for drafts written by the REST API). ``deleted`` is a
discarded draft's tombstone (never a hard delete). A signed row stays frozen by its trigger (revision 0006).
"""

from alembic import op

revision = "2026_11_26_0012"
down_revision = "2026_11_26_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE prescriptions
            ADD COLUMN hlc text COLLATE "C",
            ADD COLUMN field_hlcs jsonb,
            ADD COLUMN deleted boolean NOT NULL DEFAULT false,
            ADD COLUMN lines jsonb,
            ADD COLUMN kb_version text,
            ADD COLUMN version integer NOT NULL DEFAULT 1
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE prescriptions
            DROP COLUMN version, DROP COLUMN kb_version, DROP COLUMN lines, DROP COLUMN deleted,
            DROP COLUMN field_hlcs, DROP COLUMN hlc
        """
    )
