"""Local encounters (SOAP notes), their addenda, prescription drafts, audited alert overrides and refusals.

Revision ID: 2026_11_25_0002
Revises: 2026_11_25_0001
Create Date: 2026-11-25

A completed encounter is immutable: the service refuses the change, and the triggers below refuse it again
for any other writer (``encounters_completed_no_update`` / ``_no_delete``). Addenda are append-only and may
only be added to a completed encounter. A prescription leaves ``draft`` once (``final`` when its encounter
is completed) and is then immutable too. Overrides and refusals are audit rows: never updated or deleted.

The SOAP note is stored as the shared record's JSON (`shared.records.encounter.SoapNote`): secondary
diagnoses and the AYUSH assessment live in its ``assessment`` part, the typed prescription lines in
``plan.medications``. Encounter sync came later: revision 0005 adds the per-field stamps (docs/sync.md).
"""

from alembic import op

revision = "2026_11_25_0002"
down_revision = "2026_11_25_0001"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("encounter_addenda", "rx_alert_overrides", "rx_refusals")

TRIGGERS = [
    """
    CREATE TRIGGER encounters_completed_no_update BEFORE UPDATE ON encounters
    WHEN old.status = 'completed' BEGIN
        SELECT RAISE(ABORT, 'encounter is completed and cannot be changed; add an addendum instead');
    END
    """,
    """
    CREATE TRIGGER encounters_completed_no_delete BEFORE DELETE ON encounters
    WHEN old.status = 'completed' BEGIN
        SELECT RAISE(ABORT, 'encounter is completed and cannot be deleted');
    END
    """,
    """
    CREATE TRIGGER encounter_addenda_only_completed BEFORE INSERT ON encounter_addenda
    WHEN (SELECT status FROM encounters WHERE id = new.encounter_id) IS NOT 'completed' BEGIN
        SELECT RAISE(ABORT, 'an addendum can only be added to a completed encounter');
    END
    """,
    """
    CREATE TRIGGER prescriptions_final_no_update BEFORE UPDATE ON prescriptions
    WHEN old.status <> 'draft' BEGIN
        SELECT RAISE(ABORT, 'prescription is final and cannot be changed');
    END
    """,
    """
    CREATE TRIGGER prescriptions_final_no_delete BEFORE DELETE ON prescriptions
    WHEN old.status <> 'draft' BEGIN
        SELECT RAISE(ABORT, 'prescription is final and cannot be deleted');
    END
    """,
    *(
        statement
        for table in _APPEND_ONLY
        for statement in (
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN
                SELECT RAISE(ABORT, '{table} is append-only');
            END
            """,
            f"""
            CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN
                SELECT RAISE(ABORT, '{table} is append-only');
            END
            """,
        )
    ),
]


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE encounters (
            id               TEXT PRIMARY KEY NOT NULL,
            clinic_id        TEXT NOT NULL,
            patient_id       TEXT NOT NULL REFERENCES patients (id),
            doctor_id        TEXT NOT NULL,
            encounter_type   TEXT NOT NULL CHECK (encounter_type IN
                ('opd', 'ipd', 'emergency', 'home_visit', 'tele_video', 'tele_audio', 'tele_text')),
            start_time       TEXT NOT NULL,
            chief_complaint  TEXT NOT NULL CHECK (length(chief_complaint) BETWEEN 1 AND 1000),
            soap_note        TEXT CHECK (soap_note IS NULL OR json_valid(soap_note)),
            status           TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'completed')),
            completed_at     TEXT,
            version          INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL,
            CHECK ((status = 'completed') = (completed_at IS NOT NULL))
        )
        """
    )
    op.execute("CREATE INDEX encounters_patient ON encounters (patient_id, start_time)")
    op.execute(
        """
        CREATE TABLE encounter_addenda (
            id            TEXT PRIMARY KEY NOT NULL,
            encounter_id  TEXT NOT NULL REFERENCES encounters (id),
            author_id     TEXT NOT NULL,
            text          TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 5000),
            soap_note     TEXT CHECK (soap_note IS NULL OR json_valid(soap_note)),
            created_at    TEXT NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX encounter_addenda_encounter ON encounter_addenda (encounter_id, created_at)")
    op.execute(
        """
        CREATE TABLE prescriptions (
            id                 TEXT PRIMARY KEY NOT NULL,
            encounter_id       TEXT NOT NULL UNIQUE REFERENCES encounters (id),
            patient_id         TEXT NOT NULL REFERENCES patients (id),
            prescriber_id      TEXT NOT NULL,
            status             TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'final')),
            lines              TEXT NOT NULL CHECK (json_valid(lines)),
            medications        TEXT NOT NULL CHECK (json_valid(medications)),
            ayush_medications  TEXT NOT NULL CHECK (json_valid(ayush_medications)),
            advisories         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(advisories)),
            kb_version         TEXT NOT NULL,
            policy_version     TEXT NOT NULL,
            version            INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
            created_at         TEXT NOT NULL,
            updated_at         TEXT NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE rx_alert_overrides (
            id            TEXT PRIMARY KEY NOT NULL,
            encounter_id  TEXT NOT NULL REFERENCES encounters (id),
            user_id       TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            rule_id       TEXT NOT NULL,
            alert_key     TEXT NOT NULL,
            severity      TEXT NOT NULL CHECK (severity IN ('major', 'moderate', 'minor')),
            reason        TEXT NOT NULL CHECK (length(trim(reason)) >= 8),
            lines         TEXT NOT NULL CHECK (json_valid(lines)),
            kb_version    TEXT NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX rx_alert_overrides_encounter ON rx_alert_overrides (encounter_id, alert_key)")
    op.execute(
        """
        CREATE TABLE rx_refusals (
            id              TEXT PRIMARY KEY NOT NULL,
            encounter_id    TEXT NOT NULL REFERENCES encounters (id),
            user_id         TEXT NOT NULL,
            created_at      TEXT NOT NULL,
            rule_id         TEXT NOT NULL,
            medicine        TEXT NOT NULL,
            line_text       TEXT NOT NULL,
            reason          TEXT NOT NULL,
            source          TEXT NOT NULL,
            policy_version  TEXT NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX rx_refusals_encounter ON rx_refusals (encounter_id, created_at)")
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("rx_refusals", "rx_alert_overrides", "prescriptions", "encounter_addenda", "encounters"):
        op.execute(f"DROP TABLE IF EXISTS {table}")  # dropping a table drops its triggers
