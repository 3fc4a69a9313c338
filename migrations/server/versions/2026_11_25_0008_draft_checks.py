"""Prescription drafts keep the interaction check made when they were saved and the doctor's overrides.

Revision ID: 2026_11_25_0008
Revises: 2026_11_25_0007
Create Date: 2026-11-25

``interaction_check`` is the `shared.rx.interactions.CheckResult` (findings, safety score, knowledge-base
version) as JSON; ``overrides`` lists the major alerts the prescriber overrode with a typed reason
({rule_id, reason, by, at}). Both are evidence: what the prescriber was shown and what he decided.
"""

from alembic import op

revision = "2026_11_25_0008"
down_revision = "2026_11_25_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE prescriptions
            ADD COLUMN interaction_check jsonb,
            ADD COLUMN overrides jsonb NOT NULL DEFAULT '[]'::jsonb
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE prescriptions DROP COLUMN overrides, DROP COLUMN interaction_check")
