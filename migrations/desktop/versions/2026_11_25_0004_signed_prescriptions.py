"""Signed prescriptions on the PC: the signed bytes and QR text, written once, never changed or deleted.

Revision ID: 2026_11_25_0004
Revises: 2026_11_25_0003
Create Date: 2026-11-25

Signing (P4) happens on the PC with the doctor's own key and works offline. The prescription row itself
becomes ``final`` in the same transaction (its own trigger then freezes it); the signature row is append-only.
"""

from alembic import op

revision = "2026_11_25_0004"
down_revision = "2026_11_25_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE signed_prescriptions (
            prescription_id  TEXT PRIMARY KEY NOT NULL REFERENCES prescriptions (id),
            signer_id        TEXT NOT NULL,
            signer_kid       TEXT NOT NULL,
            signed_at        TEXT NOT NULL,
            expires_at       TEXT NOT NULL,
            content_hash     TEXT NOT NULL CHECK (length(content_hash) = 64),
            cose             BLOB NOT NULL,
            qr_payload       TEXT NOT NULL,
            sandbox          BOOLEAN NOT NULL
        )
        """
    )
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"""
            CREATE TRIGGER signed_prescriptions_no_{verb.lower()} BEFORE {verb} ON signed_prescriptions BEGIN
                SELECT RAISE(ABORT, 'a signed prescription is never changed or deleted');
            END
            """
        )


def downgrade() -> None:
    op.execute("DROP TABLE signed_prescriptions")
