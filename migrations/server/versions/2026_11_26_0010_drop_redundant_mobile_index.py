"""Drop ``patients_clinic_mobile``: every lookup it served is served by ``patients_clinic_mobile_year``.

Revision ID: 2026_11_26_0010
Revises: 2026_11_25_0009
Create Date: 2026-11-26

``(clinic_id, mobile)`` is a leading prefix of ``(clinic_id, mobile, year_of_birth)`` (migration 0004), so a
search by mobile within a clinic and the duplicate rule's join use the longer index just as well. Each new or
edited patient then writes one B-tree fewer (the sync push writes patients by the thousand).
"""

from alembic import op

revision = "2026_11_26_0010"
down_revision = "2026_11_25_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS patients_clinic_mobile")


def downgrade() -> None:
    op.execute("CREATE INDEX patients_clinic_mobile ON patients (clinic_id, mobile)")
