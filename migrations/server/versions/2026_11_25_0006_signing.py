"""Signing: doctor keys and certificates, signed prescriptions, revocations, FHIR resources (filled in by P4).

Revision ID: 2026_11_25_0006
Revises: 2026_11_25_0005
Create Date: 2026-11-25
"""

revision = "2026_11_25_0006"
down_revision = "2026_11_25_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
