"""Local store: patients (per-field HLC stamps, tombstone), their history, outbox, sync state, local users, search.

Revision ID: 2026_11_25_0001
Revises:
Create Date: 2026-11-25

Patient search is an FTS5 index (``patient_search``) over ``patient_search_docs``, an external-content table
(https://sqlite.org/fts5.html#external_content_tables) that triggers on ``patients`` keep in step, so every
writer (local edits, CSV import, sync apply) updates the index in the same transaction without remembering
to. Tokenizer: ``unicode61`` folds case and (``remove_diacritics 2``) Latin accents; ``categories`` adds the
mark categories ``M*`` to the token characters, because by default Indic vowel signs and viramas are
separators and "राधा" would be indexed as the fragments "र" and "ध". The ``digits`` column holds the mobile's
10 digits and its suffixes of 3 or more digits (so a prefix query on it finds any part of the number, such
as the last four digits a patient remembers) and the 14-digit ABHA number.

A later batch migration that rebuilds ``patients`` drops its triggers: it must run ``SEARCH_TRIGGERS``
again (copy the statements; a revision must not import another).
"""

from alembic import op

revision = "2026_11_25_0001"
down_revision = None
branch_labels = None
depends_on = None

# substr(mobile, 4) is the 10-digit number after "+91"; the next ones are its suffixes down to 3 digits.
_DIGITS = """
    trim(
        coalesce(
            substr(new.mobile, 4) || ' ' || substr(new.mobile, 5) || ' ' || substr(new.mobile, 6) || ' ' ||
            substr(new.mobile, 7) || ' ' || substr(new.mobile, 8) || ' ' || substr(new.mobile, 9) || ' ' ||
            substr(new.mobile, 10) || ' ' || substr(new.mobile, 11),
            ''
        ) || ' ' || coalesce(new.abha_number, '')
    )
"""

SEARCH_TRIGGERS = [
    f"""
    CREATE TRIGGER patients_search_insert AFTER INSERT ON patients BEGIN
        INSERT INTO patient_search_docs (patient_id, name, digits) VALUES (new.id, new.name, {_DIGITS});
    END
    """,
    f"""
    CREATE TRIGGER patients_search_update AFTER UPDATE OF name, mobile, abha_number ON patients BEGIN
        UPDATE patient_search_docs SET name = new.name, digits = {_DIGITS} WHERE patient_id = new.id;
    END
    """,
    """
    CREATE TRIGGER patients_search_delete AFTER DELETE ON patients BEGIN
        DELETE FROM patient_search_docs WHERE patient_id = old.id;
    END
    """,
]

# The standard external-content triggers: FTS5 must be told the old values to remove them from the index.
_DOCS_TRIGGERS = [
    """
    CREATE TRIGGER patient_search_docs_insert AFTER INSERT ON patient_search_docs BEGIN
        INSERT INTO patient_search (rowid, name, digits) VALUES (new.doc_id, new.name, new.digits);
    END
    """,
    """
    CREATE TRIGGER patient_search_docs_delete AFTER DELETE ON patient_search_docs BEGIN
        INSERT INTO patient_search (patient_search, rowid, name, digits)
        VALUES ('delete', old.doc_id, old.name, old.digits);
    END
    """,
    """
    CREATE TRIGGER patient_search_docs_update AFTER UPDATE ON patient_search_docs BEGIN
        INSERT INTO patient_search (patient_search, rowid, name, digits)
        VALUES ('delete', old.doc_id, old.name, old.digits);
        INSERT INTO patient_search (rowid, name, digits) VALUES (new.doc_id, new.name, new.digits);
    END
    """,
]


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE patients (
            id             TEXT PRIMARY KEY NOT NULL,
            clinic_id      TEXT NOT NULL,
            name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            gender         TEXT NOT NULL CHECK (gender IN ('M', 'F', 'O', 'U')),
            year_of_birth  INTEGER NOT NULL,
            date_of_birth  TEXT,
            mobile         TEXT CHECK (mobile IS NULL OR (length(mobile) = 13 AND mobile LIKE '+91%')),
            abha_number    TEXT CHECK (abha_number IS NULL OR length(abha_number) = 14),
            abha_address   TEXT,
            address        TEXT CHECK (address IS NULL OR json_valid(address)),
            created_at     TEXT NOT NULL,
            updated_at     TEXT NOT NULL,
            hlc            TEXT NOT NULL,
            field_hlcs     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(field_hlcs)),
            deleted        INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
            version        INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1)
        )
        """
    )
    op.execute("CREATE INDEX patients_clinic ON patients (clinic_id)")
    op.execute("CREATE INDEX patients_abha_number ON patients (abha_number) WHERE abha_number IS NOT NULL")
    op.execute("CREATE INDEX patients_abha_address ON patients (abha_address) WHERE abha_address IS NOT NULL")
    op.execute("CREATE INDEX patients_mobile ON patients (mobile) WHERE mobile IS NOT NULL")
    op.execute("CREATE INDEX patients_hlc ON patients (hlc)")

    op.execute(
        """
        CREATE TABLE patient_history (
            id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
            patient_id       TEXT NOT NULL REFERENCES patients (id),
            field            TEXT NOT NULL,
            value            TEXT NOT NULL CHECK (json_valid(value)),
            hlc              TEXT NOT NULL,
            replaced_by_hlc  TEXT NOT NULL,
            side             TEXT NOT NULL CHECK (side IN ('current', 'incoming')),
            source           TEXT NOT NULL,
            recorded_at      TEXT NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX patient_history_patient ON patient_history (patient_id, id)")
    # One entry per losing value: a stamp names one edit of one field, so pulling the same losing change
    # again (a replayed page) must not list it twice.
    op.execute("CREATE UNIQUE INDEX patient_history_value ON patient_history (patient_id, field, hlc)")

    op.execute(
        """
        CREATE TABLE outbox (
            seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
            change_id   TEXT NOT NULL UNIQUE,
            kind        TEXT NOT NULL,
            record_id   TEXT NOT NULL,
            op          TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
            payload     TEXT NOT NULL CHECK (json_valid(payload)),
            hlc         TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            batch_id    TEXT,
            acked       INTEGER NOT NULL DEFAULT 0 CHECK (acked IN (0, 1)),
            CHECK (acked = 0 OR batch_id IS NOT NULL)
        )
        """
    )
    # Partial indexes: the sync client asks only for the unsent head and for one batch at a time.
    op.execute("CREATE INDEX outbox_unsent ON outbox (seq) WHERE batch_id IS NULL")
    op.execute("CREATE INDEX outbox_batch ON outbox (batch_id, seq) WHERE batch_id IS NOT NULL")
    op.execute("CREATE INDEX outbox_pending ON outbox (seq) WHERE acked = 0")
    op.execute("CREATE INDEX outbox_hlc ON outbox (hlc)")

    op.execute("CREATE TABLE sync_state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID")

    op.execute(
        """
        CREATE TABLE local_users (
            user_id          TEXT PRIMARY KEY NOT NULL,
            hpr_id           TEXT,
            name             TEXT NOT NULL,
            role             TEXT NOT NULL CHECK (role IN ('doctor', 'nurse', 'front_desk', 'clinic_admin')),
            clinic_id        TEXT NOT NULL,
            profile          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(profile)),
            pin_hash         TEXT,
            failed_attempts  INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
            locked_until     TEXT,
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX local_users_hpr_id ON local_users (hpr_id) WHERE hpr_id IS NOT NULL")

    op.execute(
        """
        CREATE TABLE patient_search_docs (
            doc_id      INTEGER NOT NULL PRIMARY KEY,
            patient_id  TEXT NOT NULL UNIQUE,
            name        TEXT NOT NULL,
            digits      TEXT NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE VIRTUAL TABLE patient_search USING fts5 (
            name,
            digits,
            content = 'patient_search_docs',
            content_rowid = 'doc_id',
            tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'",
            prefix = '2 3'
        )
        """
    )
    for statement in _DOCS_TRIGGERS + SEARCH_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for trigger in (
        "patients_search_insert",
        "patients_search_update",
        "patients_search_delete",
        "patient_search_docs_insert",
        "patient_search_docs_delete",
        "patient_search_docs_update",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in (
        "patient_search",
        "patient_search_docs",
        "local_users",
        "sync_state",
        "outbox",
        "patient_history",
        "patients",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
