"""Audited exclusions of earlier-visit conditions live with the alert overrides: two more ``severity`` values.

Revision ID: 2026_11_26_0007
Revises: 2026_11_26_0006
Create Date: 2026-11-26

The Rx pad checks the patient's conditions from earlier completed visits too, and the doctor may leave one
out of a prescription's checks with a typed reason (`desktop.services.patient_conditions`). That decision is
recorded like an alert override, in the append-only ``rx_alert_overrides`` (rule ``CONDITION-EXCLUDED`` /
``CONDITION-INCLUDED``), so ``severity`` also allows ``excluded`` and ``included``. SQLite cannot change a
CHECK in place: the table is rebuilt with every row, its index and its append-only triggers.
"""

from alembic import op

revision = "2026_11_26_0007"
down_revision = "2026_11_26_0006"
branch_labels = None
depends_on = None

_COLUMNS = "id, encounter_id, user_id, created_at, rule_id, alert_key, severity, reason, lines, kb_version"


def _rebuild(severities: str) -> None:
    op.execute(
        f"""
        CREATE TABLE rx_alert_overrides_new (
            id            TEXT PRIMARY KEY NOT NULL,
            encounter_id  TEXT NOT NULL REFERENCES encounters (id),
            user_id       TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            rule_id       TEXT NOT NULL,
            alert_key     TEXT NOT NULL,
            severity      TEXT NOT NULL CHECK (severity IN ({severities})),
            reason        TEXT NOT NULL CHECK (length(trim(reason)) >= 8),
            lines         TEXT NOT NULL CHECK (json_valid(lines)),
            kb_version    TEXT NOT NULL
        )
        """
    )
    op.execute(f"INSERT INTO rx_alert_overrides_new ({_COLUMNS}) SELECT {_COLUMNS} FROM rx_alert_overrides")
    op.execute("DROP TABLE rx_alert_overrides")  # its index and triggers go with it
    op.execute("ALTER TABLE rx_alert_overrides_new RENAME TO rx_alert_overrides")
    op.execute("CREATE INDEX rx_alert_overrides_encounter ON rx_alert_overrides (encounter_id, alert_key)")
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"""
            CREATE TRIGGER rx_alert_overrides_no_{event.lower()} BEFORE {event} ON rx_alert_overrides BEGIN
                SELECT RAISE(ABORT, 'rx_alert_overrides is append-only');
            END
            """
        )


def upgrade() -> None:
    _rebuild("'major', 'moderate', 'minor', 'excluded', 'included'")


def downgrade() -> None:
    # Never drops audit rows: while an exclusion is recorded, copying it into the narrower CHECK fails and the
    # whole downgrade rolls back (one transaction, desktop.store.migrate), so the file stays as it was.
    _rebuild("'major', 'moderate', 'minor'")
