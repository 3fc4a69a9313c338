"""Prescription drafts sync: stamps, tombstone, overrides and the server's refusal on the PC; draft history.

Revision ID: 2026_11_26_0006
Revises: 2026_11_25_0005
Create Date: 2026-11-26

``field_hlcs`` maps field name → stamp (`shared.sync.prescription_merge`). ``deleted`` is a discarded
draft's tombstone (the row stays, so a late edit from another PC merges with the discard instead of
resurrecting a forgotten draft). ``overrides`` is the list of ``{rule_id, reason}`` the draft travels with.
``sync_refusal`` is the server's answer when it refused the draft (reason, message, stamp of the refused
edit), shown in the Rx pad; a later save clears it. ``prescription_history`` keeps every line list that lost
a merge, with the stamp that beat it. Drafts written before this revision were never queued: their content
counts as stamped before any other edit.
"""

from alembic import op

revision = "2026_11_26_0006"
down_revision = "2026_11_25_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN does not touch the final-prescription triggers (they fire on UPDATE and DELETE).
    op.execute(
        "ALTER TABLE prescriptions ADD COLUMN field_hlcs TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(field_hlcs))"
    )
    op.execute("ALTER TABLE prescriptions ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT 0")
    op.execute(
        "ALTER TABLE prescriptions ADD COLUMN overrides TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(overrides))"
    )
    op.execute(
        "ALTER TABLE prescriptions ADD COLUMN sync_refusal TEXT CHECK (sync_refusal IS NULL OR json_valid(sync_refusal))"
    )
    op.execute(
        """
        CREATE TABLE prescription_history (
            id               INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
            prescription_id  TEXT NOT NULL,
            field            TEXT NOT NULL,
            value            TEXT NOT NULL,
            hlc              TEXT NOT NULL,
            replaced_by_hlc  TEXT NOT NULL,
            lost             BOOLEAN NOT NULL,
            source           TEXT NOT NULL,
            recorded_at      TEXT NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX prescription_history_record ON prescription_history (prescription_id, id)")


def downgrade() -> None:
    op.execute("DROP TABLE prescription_history")
    for column in ("sync_refusal", "overrides", "deleted", "field_hlcs"):
        op.execute(f"ALTER TABLE prescriptions DROP COLUMN {column}")
