"""Wearable readings time series and daily averages (filled in by P5).

Revision ID: 2026_11_25_0007
Revises: 2026_11_25_0006
Create Date: 2026-11-25
"""

revision = "2026_11_25_0007"
down_revision = "2026_11_25_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
