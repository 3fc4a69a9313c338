"""Foundation: clinics, users (HPR-linked), auth, patients (ABHA-linked), hash-chained audit log.

Revision ID: 2026_11_25_0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "2026_11_25_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        """
        CREATE TABLE clinics (
            id          uuid PRIMARY KEY,
            name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            hfr_id      text UNIQUE CHECK (hfr_id ~ '^IN[A-Za-z0-9]{10}$'),
            state       text,
            address     text,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE users (
            id                    uuid PRIMARY KEY,
            clinic_id             uuid NOT NULL REFERENCES clinics(id),
            hpr_id                text CHECK (hpr_id ~ '^[0-9]{14}$'),
            hpr_address           text,
            name                  text NOT NULL,
            mobile                text,
            qualification         text,
            system_of_medicine    text,
            registration_council  text,
            registration_number   text,
            state                 text,
            role                  text NOT NULL
                CHECK (role IN ('doctor', 'nurse', 'front_desk', 'clinic_admin')),
            active                boolean NOT NULL DEFAULT true,
            created_at            timestamptz NOT NULL DEFAULT now(),
            updated_at            timestamptz NOT NULL DEFAULT now(),
            UNIQUE (clinic_id, hpr_id)
        )
        """
    )
    op.execute("CREATE INDEX users_hpr_id ON users (hpr_id)")
    op.execute(
        """
        CREATE TABLE auth_txns (
            id           uuid PRIMARY KEY,
            mobile       text NOT NULL,
            hpr_txn_id   text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz NOT NULL,
            attempts     integer NOT NULL DEFAULT 0,
            state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'used', 'dead')),
            client_ip    text
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auth_sessions (
            id            uuid PRIMARY KEY,
            user_id       uuid NOT NULL REFERENCES users(id),
            clinic_id     uuid NOT NULL REFERENCES clinics(id),
            created_at    timestamptz NOT NULL DEFAULT now(),
            expires_at    timestamptz NOT NULL,
            revoked_at    timestamptz,
            revoked_why   text,
            client_ip     text,
            user_agent    text
        )
        """
    )
    op.execute(
        """
        CREATE TABLE refresh_tokens (
            token_hash   bytea PRIMARY KEY,
            session_id   uuid NOT NULL REFERENCES auth_sessions(id),
            issued_at    timestamptz NOT NULL DEFAULT now(),
            used_at      timestamptz
        )
        """
    )
    op.execute("CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id)")
    op.execute(
        """
        CREATE TABLE rate_limit_hits (
            bucket  text NOT NULL,
            at      timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )
    op.execute("CREATE INDEX rate_limit_hits_bucket_at ON rate_limit_hits (bucket, at)")
    op.execute(
        """
        CREATE TABLE patients (
            id              uuid PRIMARY KEY,
            clinic_id       uuid NOT NULL REFERENCES clinics(id),
            name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            gender          text NOT NULL CHECK (gender IN ('M', 'F', 'O', 'U')),
            year_of_birth   smallint NOT NULL CHECK (year_of_birth >= 1900),
            date_of_birth   date,
            mobile          text CHECK (mobile ~ '^\\+91[6-9][0-9]{9}$'),
            abha_number     text CHECK (abha_number ~ '^[0-9]{14}$'),
            abha_address    text,
            address         jsonb,
            version         integer NOT NULL DEFAULT 1,
            deleted         boolean NOT NULL DEFAULT false,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            created_by      uuid REFERENCES users(id),
            updated_by      uuid REFERENCES users(id)
        )
        """
    )
    # Fuzzy and infix name search (pg_trgm); lower() keeps Indic scripts as typed and folds Latin case.
    op.execute("CREATE INDEX patients_name_trgm ON patients USING gin (lower(name) gin_trgm_ops)")
    op.execute("CREATE INDEX patients_clinic_id ON patients (clinic_id, id)")
    op.execute("CREATE INDEX patients_clinic_mobile ON patients (clinic_id, mobile)")
    op.execute("CREATE INDEX patients_clinic_abha_number ON patients (clinic_id, abha_number)")
    op.execute("CREATE INDEX patients_clinic_abha_address ON patients (clinic_id, abha_address)")
    op.execute(
        """
        CREATE TABLE audit_logs (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            chain         uuid NOT NULL,
            seq           bigint NOT NULL,
            at            timestamptz NOT NULL,
            clinic_id     uuid REFERENCES clinics(id),
            actor_id      uuid,
            actor_role    text,
            action        text NOT NULL,
            entity_type   text NOT NULL,
            entity_id     text,
            client_ip     text,
            user_agent    text,
            details       jsonb NOT NULL DEFAULT '{}'::jsonb,
            prev_hash     text NOT NULL,
            hash          text NOT NULL,
            UNIQUE (chain, seq)
        )
        """
    )
    op.execute("CREATE INDEX audit_logs_entity ON audit_logs (entity_type, entity_id)")
    # Append-only: the database itself refuses to rewrite history.
    op.execute(
        """
        CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_logs is append-only';
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER audit_logs_no_update BEFORE UPDATE OR DELETE ON audit_logs
        FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE audit_logs")
    op.execute("DROP FUNCTION audit_logs_append_only()")
    op.execute("DROP TABLE patients")
    op.execute("DROP TABLE rate_limit_hits")
    op.execute("DROP TABLE refresh_tokens")
    op.execute("DROP TABLE auth_sessions")
    op.execute("DROP TABLE auth_txns")
    op.execute("DROP TABLE users")
    op.execute("DROP TABLE clinics")
