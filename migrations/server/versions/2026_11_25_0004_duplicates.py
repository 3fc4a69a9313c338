"""Possible duplicate patients (registered offline on two PCs) and explicit merges.

Revision ID: 2026_11_25_0004
Revises: 2026_11_25_0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "2026_11_25_0004"
down_revision = "2026_11_25_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE patients ADD COLUMN merged_into uuid REFERENCES patients(id)")
    # A pair is stored once, smaller id first. Nothing is merged automatically (DESIGN.md §3): a person
    # decides, and the merge is audited.
    op.execute(
        """
        CREATE TABLE patient_duplicates (
            clinic_id    uuid NOT NULL REFERENCES clinics(id),
            patient_a    uuid NOT NULL REFERENCES patients(id),
            patient_b    uuid NOT NULL REFERENCES patients(id),
            reason       text NOT NULL CHECK (reason IN ('abha_number', 'abha_address', 'mobile_name_year')),
            detected_at  timestamptz NOT NULL DEFAULT now(),
            resolved_at  timestamptz,
            resolution   text CHECK (resolution IN ('merged', 'not_duplicate')),
            resolved_by  uuid REFERENCES users(id),
            PRIMARY KEY (patient_a, patient_b),
            CHECK (patient_a < patient_b)
        )
        """
    )
    op.execute("CREATE INDEX patient_duplicates_open ON patient_duplicates (clinic_id) WHERE resolved_at IS NULL")
    op.execute("CREATE INDEX patients_clinic_mobile_year ON patients (clinic_id, mobile, year_of_birth)")


def downgrade() -> None:
    op.execute("DROP INDEX patients_clinic_mobile_year")
    op.execute("DROP TABLE patient_duplicates")
    op.execute("ALTER TABLE patients DROP COLUMN merged_into")
