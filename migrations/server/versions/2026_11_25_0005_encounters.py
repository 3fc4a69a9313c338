"""Encounters (SOAP note, draft → completed), append-only addenda, prescription drafts.

Revision ID: 2026_11_25_0005
Revises: 2026_11_25_0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "2026_11_25_0005"
down_revision = "2026_11_25_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `hlc` is reserved for encounter sync (not yet wired); COLLATE "C" so text order is byte order, as for
    # the other synced tables.
    op.execute(
        """
        CREATE TABLE encounters (
            id               uuid PRIMARY KEY,
            clinic_id        uuid NOT NULL REFERENCES clinics(id),
            patient_id       uuid NOT NULL REFERENCES patients(id),
            doctor_id        uuid NOT NULL REFERENCES users(id),
            encounter_type   text NOT NULL,
            start_time       timestamptz NOT NULL,
            chief_complaint  text NOT NULL,
            soap_note        jsonb,
            status           text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'completed')),
            completed_at     timestamptz,
            version          integer NOT NULL DEFAULT 1,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            hlc              text COLLATE "C",
            CHECK ((status = 'completed') = (completed_at IS NOT NULL))
        )
        """
    )
    op.execute("CREATE INDEX encounters_clinic_patient ON encounters (clinic_id, patient_id, start_time DESC)")
    # A completed encounter is immutable: the database refuses any change to it, whatever the caller.
    op.execute(
        """
        CREATE FUNCTION encounters_completed_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status = 'completed' THEN
                RAISE EXCEPTION 'encounter % is completed and immutable; add an addendum', OLD.id;
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER encounters_no_change_after_completion BEFORE UPDATE OR DELETE ON encounters
        FOR EACH ROW EXECUTE FUNCTION encounters_completed_immutable()
        """
    )
    op.execute(
        """
        CREATE TABLE encounter_addenda (
            id            uuid PRIMARY KEY,
            encounter_id  uuid NOT NULL REFERENCES encounters(id),
            clinic_id     uuid NOT NULL REFERENCES clinics(id),
            author_id     uuid NOT NULL REFERENCES users(id),
            text          text NOT NULL,
            soap_note     jsonb,
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX encounter_addenda_encounter ON encounter_addenda (encounter_id, created_at)")
    op.execute(
        """
        CREATE FUNCTION encounter_addenda_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'encounter_addenda is append-only';
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER encounter_addenda_no_update BEFORE UPDATE OR DELETE ON encounter_addenda
        FOR EACH ROW EXECUTE FUNCTION encounter_addenda_append_only()
        """
    )
    op.execute(
        """
        CREATE TABLE prescriptions (
            id                 uuid PRIMARY KEY,
            clinic_id          uuid NOT NULL REFERENCES clinics(id),
            encounter_id       uuid NOT NULL REFERENCES encounters(id),
            patient_id         uuid NOT NULL REFERENCES patients(id),
            prescriber_id      uuid NOT NULL REFERENCES users(id),
            status             text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft')),
            medications        jsonb NOT NULL DEFAULT '[]'::jsonb,
            ayush_medications  jsonb NOT NULL DEFAULT '[]'::jsonb,
            advisories         jsonb NOT NULL DEFAULT '[]'::jsonb,
            policy_version     text NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX prescriptions_clinic_encounter ON prescriptions (clinic_id, encounter_id)")


def downgrade() -> None:
    op.execute("DROP TABLE prescriptions")
    op.execute("DROP TABLE encounter_addenda")
    op.execute("DROP FUNCTION encounter_addenda_append_only()")
    op.execute("DROP TABLE encounters")
    op.execute("DROP FUNCTION encounters_completed_immutable()")
