"""Signed status events of signed prescriptions on the PC: cancelled / superseded here, or pulled.

Revision ID: 2026_11_26_0008
Revises: 2026_11_26_0007
Create Date: 2026-11-26

A doctor cancels or supersedes his signed prescription on his PC, offline, with his own key
(`desktop.services.rx_status`); a pharmacy's dispensing, another PC's cancel and the server's events arrive by
pull (`desktop.sync.apply_prescriptions`). One row per event (`shared.signing.status`), with ``state``:

* ``pending``: signed here, queued for the server (the outbox entry is written in the same transaction);
* ``stale``: the server refused its ``seq`` (``stale_base``: it already holds another event there); the PC
  signs the same intent again with the next ``seq`` once it has pulled the server's events;
* ``synced``: the server holds it (applied, or pulled); frozen from then on (trigger);
* ``refused``: the server refused it for good (``refusal`` says why); kept, never shown as the status.

Rows are never deleted. Among pending and synced rows a prescription has one event per ``seq``.
"""

from alembic import op

revision = "2026_11_26_0008"
down_revision = "2026_11_26_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE prescription_status_events (
            id               TEXT PRIMARY KEY NOT NULL,
            prescription_id  TEXT NOT NULL REFERENCES prescriptions (id),
            seq              INTEGER NOT NULL CHECK (seq >= 1),
            status           TEXT NOT NULL CHECK (status IN ('dispensed', 'cancelled', 'superseded')),
            reason           TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
            at               TEXT NOT NULL,
            signer_id        TEXT,
            signer_kid       TEXT NOT NULL,
            cose             BLOB NOT NULL,
            state            TEXT NOT NULL CHECK (state IN ('pending', 'stale', 'synced', 'refused')),
            refusal          TEXT,
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX prescription_status_events_seq ON prescription_status_events (prescription_id, seq) "
        "WHERE state IN ('pending', 'synced')"
    )
    op.execute(
        """
        CREATE TRIGGER prescription_status_events_no_delete BEFORE DELETE ON prescription_status_events BEGIN
            SELECT RAISE(ABORT, 'a status event is never deleted');
        END
        """
    )
    op.execute(
        """
        CREATE TRIGGER prescription_status_events_synced_frozen BEFORE UPDATE ON prescription_status_events
        WHEN OLD.state = 'synced' BEGIN
            SELECT RAISE(ABORT, 'a status event the server holds never changes');
        END
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE prescription_status_events")  # its index and triggers go with it
