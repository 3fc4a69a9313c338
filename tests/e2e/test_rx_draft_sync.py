"""Two clinic PCs, one server: prescription drafts sync (LWW on the whole list, server gate), signed ones reach B."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from keyring.backends import fail

from desktop.config import DesktopSettings
from desktop.rx.revocations import cache_path, load_cached
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.services.encounters import EncounterService
from desktop.services.prescribing import PrescribingService, prescriber_for
from desktop.services.rx_signing import RxSigningService
from desktop.services.signing import SigningService
from desktop.store.signed_prescriptions import SignedPrescriptionRepository
from desktop.sync.apply import apply_page
from desktop.sync.apply_prescriptions import refused_signed_prescriptions
from desktop.sync.commands import device_secrets
from shared.records.prescription import MedicationLine
from shared.signing.keys import key_id
from shared.signing.rx import encode_qr_payload
from shared.signing.trust import default_trust
from shared.sync.prescription_merge import draft_id_for
from shared.sync.protocol import PulledChange, PullResponse
from tests.e2e.conftest import PC, Server
from tests.helpers import pg
from tests.sync_server.conftest import MBBS_MOBILE, last_otp

RADHA = {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"}
VISIT = {"encounter_type": "opd", "start_time": "2026-11-25T09:30:00Z", "chief_complaint": "Review of sugars"}
MBBS = prescriber_for(
    {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}, "doctor", "opd"
)


def enroll(pc: PC, keys: DoctorKeys | None = None) -> uuid.UUID:
    assert pc.store is not None
    auth = AuthService(
        pc.store.uow,
        device_secrets(DesktopSettings(data_dir=pc.data_dir)),
        lambda url: pc.transport(),
        doctor_keys=keys,
    )
    txn, _ = auth.start_sign_in(pc.server_url, MBBS_MOBILE)
    return auth.finish_sign_in(pc.server_url, txn, last_otp(pc.sandbox, MBBS_MOBILE), pc_name=pc.name).user_id


def rx(pc: PC) -> PrescribingService:
    assert pc.store is not None
    return PrescribingService(writer=pc.store.writer, uow=pc.store.uow, clock=pc.store.clock)


def start(pc: PC, doctor: uuid.UUID) -> uuid.UUID:
    assert pc.store is not None
    p = pc.patients.register(RADHA, actor="test")
    encounters = EncounterService(writer=pc.store.writer, uow=pc.store.uow, clock=pc.store.clock)
    return encounters.start({**VISIT, "patient_id": p.id}, doctor).id


def texts(pc: PC, encounter_id: uuid.UUID) -> list[str]:
    saved = rx(pc).saved(encounter_id)
    return [] if saved is None else [str(line["text"]) for line in saved.lines]


def token(server: Server, sandbox: str) -> str:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        init = http.post("/api/v1/auth/doctor/init", json={"mobile": MBBS_MOBILE}).json()
        body = {"txn_id": init["txn_id"], "otp": last_otp(sandbox, MBBS_MOBILE)}
        return str(http.post("/api/v1/auth/doctor/verify", json=body).json()["access_token"])


def server_draft(server: Server, sandbox: str, rx_id: uuid.UUID) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        r = http.get(f"/api/v1/prescriptions/{rx_id}", headers={"Authorization": f"Bearer {token(server, sandbox)}"})
        assert r.status_code == 200, r.text
        return dict(r.json())


def test_a_draft_saved_on_a_reaches_b_and_the_server_and_a_discard_follows(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    e = start(a, doctor)
    saved = rx(a).save(e, ["Metf 1000 bd 30d"], MBBS, doctor)
    assert saved is not None and saved.id == draft_id_for(e)
    report = a.sync()
    assert report.complete and not report.rejected, report.rejected
    b.sync()
    assert texts(b, e) == ["Metf 1000 bd 30d"]  # PC B's Rx pad shows PC A's draft
    on_b = rx(b).saved(e)
    assert on_b is not None and on_b.medications == saved.medications and on_b.prescriber_id == doctor
    on_server = server_draft(server, sandbox_url, saved.id)
    assert on_server["medications"] == saved.medications and on_server["status"] == "draft"
    # Replay: syncing again changes nothing anywhere.
    again = b.sync()
    assert again.complete and not again.rejected and again.updated == 0
    # Discarded on B (every line removed): a tombstone reaches A; nothing is hard-deleted on the server.
    assert rx(b).save(e, [], MBBS, doctor) is None
    assert b.sync().complete
    a.sync()
    assert rx(a).saved(e) is None
    assert pg.scalar(server.settings.database_url, f"SELECT deleted FROM prescriptions WHERE id = '{saved.id}'") is True


def test_concurrent_offline_edits_converge_and_the_loser_is_kept(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    e = start(a, doctor)
    rx(a).save(e, ["Metf 500 bd 30d"], MBBS, doctor)
    a.sync()
    b.sync()
    # Both offline: A edits first, B later (B's stamp is the later one).
    rx(a).save(e, ["Metf 500 bd 30d", "amlo 5 od 30d"], MBBS, doctor)
    rx(b).save(e, ["Metf 1000 bd 30d"], MBBS, doctor)
    assert a.sync().complete
    report = b.sync()
    assert not report.rejected
    a.sync()
    assert texts(a, e) == texts(b, e) == ["Metf 1000 bd 30d"]
    rx_id = draft_id_for(e)
    assert server_draft(server, sandbox_url, rx_id)["medications"] == rx(b).saved(e).medications  # type: ignore[union-attr]
    # A's list lost: kept in A's history and in the server's record history, never dropped.
    lost = [lv for lv in rx(a).history(e) if lv.field == "lines"]
    assert [[line["text"] for line in lv.value] for lv in lost] == [["Metf 500 bd 30d", "amlo 5 od 30d"]]  # type: ignore[union-attr, index]
    kept = pg.scalar(
        server.settings.database_url,
        "SELECT json_agg(value ORDER BY id)::text FROM record_history WHERE kind = 'prescription_draft'"
        f" AND record_id = '{rx_id}' AND field = 'lines'",
    )
    replaced = [[line["text"] for line in value] for value in json.loads(kept)]
    assert replaced == [["Metf 500 bd 30d"], ["Metf 500 bd 30d", "amlo 5 od 30d"]]  # every replaced list


def test_a_draft_the_server_refuses_stays_on_the_pc_with_the_rules_reason(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a = make_pc("pc-a")
    doctor = enroll(a)
    e = start(a, doctor)
    saved = rx(a).save(e, ["Metf 500 bd 30d"], MBBS, doctor)
    assert saved is not None and a.store is not None

    def forge() -> None:  # an older app (or another policy) let a contraindicated pair through
        assert a.store is not None
        with a.store.uow.write() as uow:
            row = uow.connection.execute(
                sa.text("SELECT seq, payload FROM outbox WHERE kind = 'prescription_draft'")
            ).one()
            payload = json.loads(row.payload)
            pair = [
                MedicationLine(generic_name=n, frequency="Twice daily", duration_days=5).model_dump(mode="json")
                for n in ("COLCHICINE", "CLARITHROMYCIN")
            ]
            payload["fields"]["medications"] = pair
            uow.connection.execute(
                sa.text("UPDATE outbox SET payload = :p WHERE seq = :s"), {"p": json.dumps(payload), "s": row.seq}
            )
            uow.commit()

    a.store.writer.run(forge)
    report = a.sync()
    assert [(r.kind, r.reason) for r in report.rejected] == [("prescription_draft", "invalid_record")]
    assert report.rejected[0].message.startswith("rx.contraindicated")
    refusal = rx(a).sync_refusal(e)
    assert refusal is not None and refusal["message"].startswith("rx.contraindicated")
    assert texts(a, e) == ["Metf 500 bd 30d"]  # the local draft is untouched
    count = pg.scalar(server.settings.database_url, "SELECT count(*) FROM prescriptions")
    assert count == 0
    # Saving again clears the refusal and syncs.
    rx(a).save(e, ["Metf 500 bd 30d", "amlo 5 od 30d"], MBBS, doctor)
    assert rx(a).sync_refusal(e) is None
    assert a.sync().complete


def test_a_rest_draft_reaches_the_pcs_rx_pad(make_pc: Callable[..., PC], server: Server, sandbox_url: str) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    e = start(a, doctor)
    assert a.sync().complete
    body = {
        "encounter_id": str(e),
        "medications": [{"generic_name": "METFORMIN", "strength": "500mg", "frequency": "bd", "duration_days": 30}],
    }
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        r = http.post(
            "/api/v1/prescriptions/draft", json=body, headers={"Authorization": f"Bearer {token(server, sandbox_url)}"}
        )
    assert r.status_code == 201, r.text
    assert set(r.json()) >= {"id", "encounter_id", "medications", "status", "advisories"}
    b.sync()
    on_b = rx(b).saved(e)
    assert on_b is not None and on_b.id == uuid.UUID(r.json()["id"])
    assert on_b.medications == r.json()["medications"] and texts(b, e) == ["METFORMIN 500mg bd x 30d"]
    # Replaying the whole feed on B (a fresh cursor) changes nothing and loses nothing.
    assert b.store is not None

    def rewind() -> None:
        assert b.store is not None
        with b.store.uow.write() as uow:
            uow.sync_state.set_pull_cursor("0")
            uow.commit()

    b.store.writer.run(rewind)
    replay = b.sync()
    assert replay.complete and replay.inserted == replay.updated == replay.conflicts == 0
    assert rx(b).history(e) == [] and rx(b).saved(e) == on_b


def test_a_signed_prescription_reaches_b_verified_and_a_tampered_one_is_refused(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    assert a.store is not None and b.store is not None
    keys = DoctorKeys(SecretStore("signing", a.data_dir, system_keyring=fail.Keyring()), a.data_dir)
    doctor = enroll(a, keys)
    enroll(b)
    e = start(a, doctor)
    rx(a).save(e, ["Metf 1000 bd 30d"], MBBS, doctor)
    # Signed two minutes ago, so the revocation below is unambiguously later (revocation times have seconds).
    earlier = lambda: datetime.now(UTC) - timedelta(minutes=2)  # noqa: E731
    signing = RxSigningService(
        a.store.uow, SigningService(keys, a.data_dir), a.data_dir, clock=a.store.clock, now=earlier
    )
    signed = signing.sign_and_print(doctor, e)
    report = a.sync()
    assert report.complete and not report.rejected, report.rejected
    b.sync()
    with b.store.uow.read() as uow:
        on_b = SignedPrescriptionRepository(uow.connection).find(signed.prescription_id)
        status = uow.connection.execute(
            sa.text("SELECT status FROM prescriptions WHERE id = :i"), {"i": str(signed.prescription_id)}
        ).scalar_one()
    assert on_b is not None and on_b.qr_payload == signed.qr_payload and on_b.content_hash == signed.content_hash
    assert status == "final"
    # The reprint on B uses the stored signed bytes: B's signing service answers the same signature.
    assert rx(b).saved(e) is not None

    # The doctor's key is revoked after signing: a PC holding the revocation list still stores the prescription
    # (it was valid when signed), and its QR still verifies on B.
    kid = key_id(keys.public_key(doctor))
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        revoked = http.post(
            "/api/v1/signing/revocations",
            json={"kid": kid, "reason": "PC stolen"},
            headers={"Authorization": f"Bearer {token(server, sandbox_url)}"},
        )
    assert revoked.status_code == 201, revoked.text
    assert a.sync().complete  # installs the list in A's cache
    e_pc = make_pc("pc-e")
    enroll(e_pc)
    cache_path(e_pc.data_dir).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache_path(a.data_dir), cache_path(e_pc.data_dir))
    assert [x.kid for lst in load_cached(e_pc.data_dir, default_trust()).lists for x in lst.entries] == [kid]
    e_pc.sync()
    assert e_pc.store is not None
    with e_pc.store.uow.read() as uow:
        assert SignedPrescriptionRepository(uow.connection).find(signed.prescription_id) is not None
        assert refused_signed_prescriptions(uow) == {}

    # A tampered signed prescription in a pulled page: a new PC refuses to store it and says why.
    b.client()
    page = b.transport().pull(None, 1000)[0]
    genuine = next(ch for ch in page.changes if ch.kind == "signed_prescription")
    cose = bytearray(base64.b64decode(str(genuine.fields["cose"])))
    cose[-1] ^= 0x01  # one bit of the signature
    fields = dict(genuine.fields) | {
        "cose": base64.b64encode(bytes(cose)).decode(),
        "qr_payload": encode_qr_payload(bytes(cose), limit=None),
    }
    forged = PulledChange.model_validate(genuine.model_dump() | {"fields": fields})
    d = make_pc("pc-d")
    enroll(d)
    assert d.store is not None
    forged_page = PullResponse(changes=[forged], next_cursor="0", has_more=False, server_hlc=page.server_hlc)
    d.store.writer.run(apply_page, d.store.uow, forged_page, d.store.clock)
    with d.store.uow.read() as uow:
        assert SignedPrescriptionRepository(uow.connection).find(genuine.id) is None
        refused = refused_signed_prescriptions(uow)
    assert list(refused) == [str(genuine.id)] and refused[str(genuine.id)].startswith("bad_signature")
    # The genuine one from the feed is stored (replay of the whole feed on a fresh cursor).
    d.sync()
    with d.store.uow.read() as uow:
        assert SignedPrescriptionRepository(uow.connection).find(genuine.id) is not None
        assert refused_signed_prescriptions(uow) == {}  # settled by the genuine one


def test_two_pcs_starting_the_same_encounters_prescription_offline_write_one_record(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    e = start(a, doctor)
    a.sync()
    b.sync()  # B has the encounter, no prescription yet
    rx(a).save(e, ["Metf 500 bd 30d"], MBBS, doctor)
    rx(b).save(e, ["amlo 5 od 30d"], MBBS, doctor)
    for pc in (a, b, a):
        report = pc.sync()
        assert not report.rejected, report.rejected
    assert texts(a, e) == texts(b, e) == ["amlo 5 od 30d"]
    rows = pg.scalar(server.settings.database_url, f"SELECT count(*) FROM prescriptions WHERE encounter_id = '{e}'")
    assert rows == 1
    lost = [lv.value for lv in rx(a).history(e) if lv.field == "lines"]
    assert lost == [[{"text": "Metf 500 bd 30d", "expanded": lost[0][0]["expanded"]}]]  # type: ignore[index]
