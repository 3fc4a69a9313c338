"""Signing: doctor keys and certificates, signed prescriptions, revocations, FHIR resources (filled in by P4).

A signed prescription is a legal document: once `status = 'signed'` the database itself refuses any change
to the row (trigger), whatever the caller. What happens afterwards (dispensed, cancelled, superseded) is a
new, signed, append-only row in `prescription_status_events`, monotonic by construction (no event after
cancelled/superseded; dispensed once).

Revision ID: 2026_11_25_0006
Revises: 2026_11_25_0005
Create Date: 2026-11-25
"""

from alembic import op

revision = "2026_11_25_0006"
down_revision = "2026_11_25_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per certified doctor key. `private_key_enc` is the Ed25519 seed sealed with AES-256-GCM under
    # the server's key-encryption key (INTEGMED_SIGNING_KEK); NULL for a key generated and held on the
    # doctor's PC, of which the server only ever sees the public half.
    op.execute(
        """
        CREATE TABLE doctor_keys (
            kid                text PRIMARY KEY,
            user_id            uuid NOT NULL REFERENCES users(id),
            clinic_id          uuid NOT NULL REFERENCES clinics(id),
            public_key         bytea NOT NULL CHECK (length(public_key) = 32),
            private_key_enc    bytea,
            held_by            text NOT NULL CHECK (held_by IN ('server', 'desktop')),
            certificate        bytea NOT NULL,
            issuer_kid         text NOT NULL,
            not_before         timestamptz NOT NULL,
            not_after          timestamptz NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now(),
            revoked_at         timestamptz,
            revocation_reason  text,
            CHECK ((held_by = 'server') = (private_key_enc IS NOT NULL)),
            CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL)),
            CHECK (not_after > not_before)
        )
        """
    )
    op.execute("CREATE INDEX doctor_keys_user ON doctor_keys (user_id, created_at DESC)")
    # Keys are never deleted and their certified facts never change; the only change allowed is recording a
    # revocation, once.
    op.execute(
        """
        CREATE FUNCTION doctor_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'doctor key % cannot be deleted; revoke it', OLD.kid;
            END IF;
            IF OLD.revoked_at IS NOT NULL
               OR (NEW.kid, NEW.user_id, NEW.clinic_id, NEW.public_key, NEW.private_key_enc, NEW.held_by,
                   NEW.certificate, NEW.issuer_kid, NEW.not_before, NEW.not_after, NEW.created_at)
                  IS DISTINCT FROM
                  (OLD.kid, OLD.user_id, OLD.clinic_id, OLD.public_key, OLD.private_key_enc, OLD.held_by,
                   OLD.certificate, OLD.issuer_kid, OLD.not_before, OLD.not_after, OLD.created_at) THEN
                RAISE EXCEPTION 'doctor key %: only a first revocation may be recorded', OLD.kid;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER doctor_keys_guard BEFORE UPDATE OR DELETE ON doctor_keys
        FOR EACH ROW EXECUTE FUNCTION doctor_keys_guard()
        """
    )

    op.execute("ALTER TABLE prescriptions DROP CONSTRAINT prescriptions_status_check")
    op.execute(
        "ALTER TABLE prescriptions ADD CONSTRAINT prescriptions_status_check CHECK (status IN ('draft', 'signed'))"
    )
    op.execute(
        """
        ALTER TABLE prescriptions
            ADD COLUMN signed_at     timestamptz,
            ADD COLUMN content_hash  text CHECK (content_hash ~ '^[0-9a-f]{64}$'),
            ADD COLUMN signature     bytea,
            ADD COLUMN cose          bytea,
            ADD COLUMN qr_payload    text,
            ADD COLUMN signer_kid    text REFERENCES doctor_keys(kid),
            ADD CONSTRAINT prescriptions_signed_complete CHECK (
                (status = 'signed') = (signed_at IS NOT NULL AND content_hash IS NOT NULL AND signature IS NOT NULL
                                       AND cose IS NOT NULL AND qr_payload IS NOT NULL AND signer_kid IS NOT NULL)
            )
        """
    )
    op.execute(
        """
        CREATE FUNCTION prescriptions_signed_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status = 'signed' THEN
                RAISE EXCEPTION 'prescription % is signed and immutable; record a status event instead', OLD.id
                    USING ERRCODE = 'integrity_constraint_violation';
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
        CREATE TRIGGER prescriptions_no_change_after_signing BEFORE UPDATE OR DELETE ON prescriptions
        FOR EACH ROW EXECUTE FUNCTION prescriptions_signed_immutable()
        """
    )

    op.execute(
        """
        CREATE TABLE prescription_status_events (
            id               uuid PRIMARY KEY,
            prescription_id  uuid NOT NULL REFERENCES prescriptions(id),
            clinic_id        uuid NOT NULL REFERENCES clinics(id),
            seq              integer NOT NULL CHECK (seq >= 1),
            status           text NOT NULL CHECK (status IN ('dispensed', 'cancelled', 'superseded')),
            reason           text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
            at               timestamptz NOT NULL,
            actor_id         uuid NOT NULL REFERENCES users(id),
            signer_kid       text NOT NULL REFERENCES doctor_keys(kid),
            cose             bytea NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            UNIQUE (prescription_id, seq)
        )
        """
    )
    # Dispensed once; nothing after cancelled or superseded (one terminal event, and no later event).
    op.execute(
        "CREATE UNIQUE INDEX prescription_status_events_dispensed_once "
        "ON prescription_status_events (prescription_id) WHERE status = 'dispensed'"
    )
    op.execute(
        "CREATE UNIQUE INDEX prescription_status_events_one_terminal "
        "ON prescription_status_events (prescription_id) WHERE status IN ('cancelled', 'superseded')"
    )
    op.execute(
        """
        CREATE FUNCTION prescription_status_events_monotonic() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                RAISE EXCEPTION 'prescription_status_events is append-only';
            END IF;
            IF NOT EXISTS (SELECT 1 FROM prescriptions WHERE id = NEW.prescription_id AND status = 'signed') THEN
                RAISE EXCEPTION 'prescription % is not signed: it has no status events', NEW.prescription_id
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF EXISTS (SELECT 1 FROM prescription_status_events
                       WHERE prescription_id = NEW.prescription_id AND status IN ('cancelled', 'superseded')) THEN
                RAISE EXCEPTION 'prescription % is already cancelled or superseded', NEW.prescription_id
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER prescription_status_events_monotonic BEFORE INSERT OR UPDATE OR DELETE
        ON prescription_status_events FOR EACH ROW EXECUTE FUNCTION prescription_status_events_monotonic()
        """
    )

    # Revoked doctor keys; the signed revocation list is built from this table. Append-only.
    op.execute(
        """
        CREATE TABLE signing_revocations (
            seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kid         text NOT NULL UNIQUE REFERENCES doctor_keys(kid),
            clinic_id   uuid NOT NULL REFERENCES clinics(id),
            revoked_at  timestamptz NOT NULL,
            reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
            revoked_by  uuid NOT NULL REFERENCES users(id),
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION signing_revocations_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'signing_revocations is append-only';
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER signing_revocations_no_update BEFORE UPDATE OR DELETE ON signing_revocations
        FOR EACH ROW EXECUTE FUNCTION signing_revocations_append_only()
        """
    )

    # FHIR resources produced for ABDM (DESIGN.md §5): JSONB with a GIN index for containment queries.
    op.execute(
        """
        CREATE TABLE fhir_resources (
            id             uuid PRIMARY KEY,
            clinic_id      uuid NOT NULL REFERENCES clinics(id),
            resource_type  text NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 100),
            resource_id    text NOT NULL CHECK (length(resource_id) BETWEEN 1 AND 200),
            bundle         jsonb NOT NULL CHECK (jsonb_typeof(bundle) = 'object'),
            created_at     timestamptz NOT NULL DEFAULT now(),
            UNIQUE (clinic_id, resource_type, resource_id)
        )
        """
    )
    op.execute("CREATE INDEX fhir_resources_bundle ON fhir_resources USING gin (bundle jsonb_path_ops)")


def downgrade() -> None:
    # Signed prescriptions cannot be represented before this revision: refuse rather than lose them.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM prescriptions WHERE status = 'signed') THEN
                RAISE EXCEPTION 'signed prescriptions exist: downgrading would destroy signed documents';
            END IF;
        END $$
        """
    )
    op.execute("DROP TABLE fhir_resources")
    op.execute("DROP TABLE signing_revocations")
    op.execute("DROP FUNCTION signing_revocations_append_only()")
    op.execute("DROP TABLE prescription_status_events")
    op.execute("DROP FUNCTION prescription_status_events_monotonic()")
    op.execute("DROP TRIGGER prescriptions_no_change_after_signing ON prescriptions")
    op.execute("DROP FUNCTION prescriptions_signed_immutable()")
    op.execute(
        """
        ALTER TABLE prescriptions
            DROP CONSTRAINT prescriptions_signed_complete,
            DROP COLUMN signer_kid,
            DROP COLUMN qr_payload,
            DROP COLUMN cose,
            DROP COLUMN signature,
            DROP COLUMN content_hash,
            DROP COLUMN signed_at
        """
    )
    op.execute("ALTER TABLE prescriptions DROP CONSTRAINT prescriptions_status_check")
    op.execute("ALTER TABLE prescriptions ADD CONSTRAINT prescriptions_status_check CHECK (status IN ('draft'))")
    op.execute("DROP TABLE doctor_keys")
    op.execute("DROP FUNCTION doctor_keys_guard()")
