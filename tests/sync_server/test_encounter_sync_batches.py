"""Encounter push batch-wise gives exactly what one change at a time gives (`sync_server.services.encounter_sync`).

Random sequences of push batches (creates, section edits, completions, late edits after completion, the same
encounter several times in one batch, encounters of patients created later in the same batch, unknown and
other clinics' patients and doctors, deletes, invalid values, pushed addenda, re-sent changes and replayed
batches) run twice from the same database state: once through the per-change reference path
(`encounter_sync.per_change`), once batch-wise, each in a transaction rolled back afterwards. Every result and
every row they leave (encounters, addenda, record history, audit entries, change feed) must be the same.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from contextlib import nullcontext
from typing import Any

import asyncpg
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, Stamp, encode
from shared.ids import uuid7
from shared.sync.encounter_merge import SECTION_FIELDS
from shared.sync.protocol import PushRequest
from sync_server.services import encounter_sync
from sync_server.services import sync as sync_service
from sync_server.services.context import Actor, RequestMeta
from sync_server.settings import Settings as ServerSettings
from tests.sync_server.conftest import BAMS_MOBILE, DEMO_CLINIC, SignedIn, sign_in
from tests.sync_server.test_encounter_sync import enc_change, header, results
from tests.sync_server.test_sync_api import Device, new_patient

SCENARIOS = 60
DONE = {"status": "completed", "completed_at": "2026-11-25T10:00:00Z"}

_TEXTS = (
    "Fever up to 101 F for 3 days, evening rise, with chills",
    "Dry cough, worse at night; no breathlessness",
    "Burning micturition for 2 days, no flank pain",
    "Known diabetic on metformin 500 mg BD, occasional missed doses",
)


def _section(rng: random.Random, name: str) -> Any:
    """A SOAP section as the desktop sends it; sometimes cleared (None), sometimes invalid, sometimes with
    numbers jsonb gives back in another form (1e16 as an integer, -0.0 as 0.0)."""
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.12:
        return {"vitals": {"pulse": 720}} if name == "objective" else {"unknown": "x"}
    if name in ("subjective", "examination"):
        return rng.choice(_TEXTS) + rng.choice(("", ".", "; review"))
    if name == "objective":
        vitals = {"bp": rng.choice(("130/85", "142/92", "118/76")), "pulse": rng.randint(60, 110)}
        return {"vitals": vitals | {"temperature": 99.1, "temperature_unit": "F"}, "examination": "Chest clear"}
    if name == "assessment":
        return {"primary_diagnosis": {"condition": rng.choice(("Viral fever", "Essential hypertension"))}}
    dose = rng.choice((650.0, 500, 1e16, 2.5e20, -0.0, 0.25, 1e-7))
    return {"medications": ["Tab Paracetamol 650 mg TDS", {"drug": "Amlodipine", "dose": dose}], "followup": "1 week"}


class _Scenario:
    """Random push batches of two PCs of one clinic (the test's randomness is `rng`: the seed reproduces it)."""

    def __init__(self, rng: random.Random, world: dict[str, Any]) -> None:
        self.rng, self.world = rng, world
        self.encounters: list[uuid.UUID] = [world["draft"], world["completed"], world["foreign"]]
        self.patients: list[uuid.UUID] = list(world["patients"])
        self.sent: list[dict[str, Any]] = []
        self.pending: list[uuid.UUID] = []  # patients the batch being made creates
        self.repeats = 0  # batches with an encounter changed more than once
        self.batches: list[tuple[str, str, list[dict[str, Any]]]] = []  # (device key, batch id, changes)

    def stamp(self, device: HLC) -> str:
        now = device.now()
        ago = self.rng.choice((0, 0, 0, 5_000, 60_000))
        return encode(Stamp(now.wall_ms - ago, now.counter, now.node) if ago else now)

    def encounter_change(self, device: HLC) -> dict[str, Any]:
        rng, world = self.rng, self.world
        stamp = self.stamp(device)
        roll = rng.random()
        eid = rng.choice(self.encounters)
        op = "upsert"
        fields: dict[str, Any]
        if roll < 0.25:  # a new encounter
            eid = uuid7()
            self.encounters += [eid, eid]  # edited more often than the base ones
            patient = rng.choice(
                [*self.patients, *self.patients, uuid7(), world["foreign_patient"]]
                + ([self.new_patient()] if rng.random() < 0.3 else [])
            )
            fields = header(patient, chief_complaint=rng.choice(("Fever for 3 days", "Cough", " Cough ")))
            doctor = rng.choice((None, None, world["doctor"], world["colleague"], world["foreign_doctor"], uuid7()))
            if doctor is not None:
                fields["doctor_id"] = str(doctor)
            for name in rng.sample(SECTION_FIELDS, rng.randint(0, 5)):
                fields[name] = _section(rng, name)
            fields |= rng.choice(({"status": "draft", "completed_at": None}, {}, {}, DONE))
            if rng.random() < 0.1:
                del fields[rng.choice(("patient_id", "encounter_type", "start_time", "chief_complaint"))]
        elif roll < 0.6:  # a section edit
            names = rng.sample(SECTION_FIELDS, rng.choice((1, 1, 2)))
            fields = {name: _section(rng, name) for name in names}
        elif roll < 0.72:  # completion (or reopening, which never happens)
            minute = rng.randint(0, 59)
            fields = rng.choice((DONE, {"status": "completed", "completed_at": f"2026-11-25T11:{minute:02d}:00Z"}))
            if rng.random() < 0.15:
                fields = {"status": "draft", "completed_at": None}
        elif roll < 0.85:  # a header edit, sometimes invalid
            fields = rng.choice(
                (
                    {"encounter_type": rng.choice(("opd", "tele_video", "picnic"))},
                    {"start_time": rng.choice(("2026-11-25T08:00:00Z", "2026-11-25T15:00:00+05:30"))},
                    {"chief_complaint": rng.choice(("Headache", "  Headache"))},
                    {"patient_id": str(rng.choice(self.patients))},
                    {"doctor_id": str(world["colleague"])},
                    {"soap": "not a field"},
                )
            )
        elif roll < 0.9:
            op, fields = "delete", {}
        else:  # an addendum pushed by the PC
            aid = uuid7()
            author = rng.choice((world["doctor"], world["doctor"], uuid7()))
            addendum = {
                "encounter_id": str(eid),
                "author_id": str(author),
                "text": rng.choice(("Lab report: Hb 11.2 g/dL", "Called the patient: fever settled")),
                "soap_note": rng.choice((None, {"subjective": "Fever settled"})),
                "created_at": "2026-11-25T12:00:00Z",
            }
            change: dict[str, Any] = {"kind": "encounter_addendum", "id": str(aid), "op": "upsert", "hlc": stamp}
            return change | {"fields": addendum, "field_hlcs": dict.fromkeys(addendum, stamp)}
        change = {"kind": "encounter", "id": str(eid), "op": op, "hlc": stamp}
        if op == "upsert":
            change |= {"fields": fields, "field_hlcs": dict.fromkeys(fields, stamp)}
        return change

    def new_patient(self) -> uuid.UUID:
        """A patient this batch creates; its change goes anywhere in the batch (patients are stored first)."""
        pid = uuid7()
        self.pending.append(pid)
        return pid

    def batch(self, key: str, device: HLC) -> None:
        rng = self.rng
        if self.batches and rng.random() < 0.12:  # the same batch again (a retry after a lost answer)
            self.batches.append(rng.choice(self.batches))
            return
        if self.sent and rng.random() < 0.12:  # earlier changes re-sent in a new batch
            self.batches.append((key, str(uuid7()), rng.sample(self.sent, min(len(self.sent), 4))))
            return
        self.pending = []
        changes = [self.encounter_change(device) for _ in range(rng.randint(1, 12))]
        for _ in range(rng.randint(0, 3)):  # the same change twice in a batch
            changes.insert(rng.randint(0, len(changes)), rng.choice(changes))
        for pid in self.pending:
            stamp = encode(device.now())
            patient = new_patient(name=rng.choice(("Meena Kumari", "Ravi Verma")))
            change: dict[str, Any] = {"kind": "patient", "id": str(pid), "op": "upsert", "hlc": stamp}
            change |= {"fields": patient, "field_hlcs": dict.fromkeys(patient, stamp)}
            changes.insert(rng.randint(0, len(changes)), change)
            self.patients.append(pid)
        ids = [c["id"] for c in changes if c["kind"] == "encounter"]
        self.repeats += len(ids) > len(set(ids))
        self.sent += changes
        self.batches.append((key, str(uuid7()), changes))


async def _snapshot(conn: asyncpg.Connection, marks: dict[str, int]) -> dict[str, Any]:
    """Every row an encounter push writes (identity ids and times left out: each run has its own)."""
    return {
        "encounters": [
            dict(r)
            for r in await conn.fetch(
                "SELECT id, clinic_id, patient_id, doctor_id, encounter_type, start_time, chief_complaint,"
                " soap_note::text, status, completed_at, version, hlc, field_hlcs::text,"
                " created_at = now() AS created_now, updated_at = now() AS updated_now FROM encounters ORDER BY id"
            )
        ],
        "addenda": [
            dict(r)
            for r in await conn.fetch(
                "SELECT id, encounter_id, clinic_id, author_id, text, soap_note::text, hlc,"
                " created_at = now() AS created_now FROM encounter_addenda ORDER BY id"
            )
        ],
        "history": [
            dict(r)
            for r in await conn.fetch(
                "SELECT clinic_id, kind, record_id, field, value::text, hlc, replaced_by_hlc, lost, source"
                " FROM record_history WHERE id > $1 ORDER BY id",
                marks["history"],
            )
        ],
        "audit": [
            dict(r)
            for r in await conn.fetch(
                "SELECT chain, seq, clinic_id, actor_id, actor_role, action, entity_type, entity_id, details::text"
                " FROM audit_logs WHERE id > $1 ORDER BY id",
                marks["audit"],
            )
        ],
        "feed": [
            dict(r)
            for r in await conn.fetch("SELECT clinic_id, seq, kind, record_id, batch_id FROM change_feed ORDER BY seq")
        ],
    }


async def _run(
    dsn: str, actors: dict[str, Actor], batches: list[tuple[str, str, list[dict[str, Any]]]], *, per_change: bool
) -> tuple[list[Any], dict[str, Any]]:
    """Push the batches in order in one transaction, then roll it back: (results of each batch, rows left)."""
    conn = await asyncpg.connect(dsn)
    try:
        marks = {
            "history": await conn.fetchval("SELECT coalesce(max(id), 0) FROM record_history"),
            "audit": await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_logs"),
        }
        clock = HLC("srv-equivalence")
        answers: list[Any] = []
        tx = conn.transaction()
        await tx.start()
        try:
            with encounter_sync.per_change() if per_change else nullcontext():
                for key, batch_id, changes in batches:
                    actor = actors[key]
                    req = PushRequest.model_validate(
                        {
                            "batch_id": batch_id,
                            "device_id": str(actor.user_id),
                            "schema_version": RECORD_SCHEMA_VERSION,
                            "protocol_version": PROTOCOL_VERSION,
                            "changes": changes,
                        }
                    )
                    try:
                        async with conn.transaction():  # each batch is a push of its own (a savepoint here)
                            response = await sync_service.push(conn, actor, req, clock)
                        answers.append([r.model_dump(mode="json") for r in response.results])
                    except Exception as exc:  # a failing batch must fail in both paths alike
                        answers.append(f"{type(exc).__name__}: {exc}")
            return answers, await _snapshot(conn, marks)
        finally:
            await tx.rollback()
    finally:
        await conn.close()


def _world(api: TestClient, doctor: SignedIn, other: SignedIn, colleague: SignedIn) -> dict[str, Any]:
    """Committed starting state: two PCs of the demo clinic, patients, a draft and a completed encounter, and a
    patient and an encounter of the other clinic."""
    a, b, c = Device(api, doctor, "PC A"), Device(api, doctor, "PC B"), Device(api, colleague, "PC C")
    foreign = Device(api, other, "Other clinic PC")
    patients = [uuid7() for _ in range(3)]
    draft, completed, foreign_enc, foreign_patient = uuid7(), uuid7(), uuid7(), uuid7()
    got = results(
        a.push(
            [a.change(p, new_patient()) for p in patients]
            + [
                enc_change(a, draft, header(patients[0], subjective="Fever", plan={"followup": "3 days"})),
                enc_change(a, completed, header(patients[1], subjective="Cough") | DONE),
            ]
        )
    )
    assert {r["status"] for r in got} == {"applied"}
    got = results(
        foreign.push(
            [foreign.change(foreign_patient, new_patient()), enc_change(foreign, foreign_enc, header(foreign_patient))]
        )
    )
    assert {r["status"] for r in got} == {"applied"}
    return {
        "devices": {"a": a, "b": b, "c": c},
        "patients": patients,
        "draft": draft,
        "completed": completed,
        "foreign": foreign_enc,
        "foreign_patient": foreign_patient,
        "doctor": uuid.UUID(doctor.user["id"]),
        "colleague": uuid.UUID(colleague.user["id"]),
        "foreign_doctor": uuid.UUID(other.user["id"]),
    }


def test_batch_wise_encounter_push_is_the_per_change_push(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn, settings: ServerSettings, sandbox_url: str
) -> None:
    colleague = sign_in(api, sandbox_url, BAMS_MOBILE)
    world = _world(api, doctor, other_clinic_doctor, colleague)
    devices = world["devices"]
    actors = {
        key: Actor(uuid.UUID(d.id), uuid7(), uuid.UUID(DEMO_CLINIC), "device", None, RequestMeta("127.0.0.1", "t"))
        for key, d in devices.items()
    }
    seen: Counter[str] = Counter()
    for seed in range(SCENARIOS):
        rng = random.Random(seed)
        scenario = _Scenario(rng, world)
        clocks = {key: HLC(d.id.replace("-", "")) for key, d in devices.items()}
        for _ in range(rng.randint(2, 6)):
            key = rng.choice(("a", "a", "b", "c"))
            scenario.batch(key, clocks[key])
        reference = asyncio.run(_run(settings.database_url, actors, scenario.batches, per_change=True))
        batch_wise = asyncio.run(_run(settings.database_url, actors, scenario.batches, per_change=False))
        assert batch_wise[0] == reference[0], f"seed {seed}: results differ"
        for table, rows in reference[1].items():
            assert batch_wise[1][table] == rows, f"seed {seed}: {table} differ"
        for answer in reference[0]:
            assert not isinstance(answer, str), f"seed {seed}: a batch failed: {answer}"
            for r in answer:
                seen[f"{r['kind']} {r['status']} {r['reason'] or ''}".strip()] += 1
                seen["late edit kept as addendum"] += "addendum" in (r["message"] or "")
        seen["batch with an encounter more than once"] += scenario.repeats
    # The scenarios reach every kind of outcome the push has.
    for outcome in (
        "encounter applied",
        "encounter merged",
        "encounter rejected invalid_record",
        "encounter rejected not_in_scope",
        "encounter_addendum applied",
        "encounter_addendum rejected invalid_record",
        "late edit kept as addendum",
        "batch with an encounter more than once",
        "patient applied",
    ):
        assert seen[outcome] > 0, (outcome, seen)


def _typed(value: Any) -> Any:
    """A JSON value with the type of every number kept (1 and 1.0 compare equal in Python; here they differ)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def test_a_written_note_is_held_as_jsonb_gives_it_back(db_url: str) -> None:
    """The batch keeps a written encounter's SOAP sections as reading the row back would give them
    (`encounter_sync._as_jsonb`): numbers as ``numeric`` turns them."""
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(db_url))

    def held(values: list[Any]) -> None:
        sql = "SELECT v::text FROM unnest($1::jsonb[]) v"
        rows = loop.run_until_complete(conn.fetch(sql, [json.dumps(v) for v in values]))
        read_back = [json.loads(r["v"]) for r in rows]
        assert [_typed(encounter_sync._as_jsonb(v)) for v in values] == [_typed(v) for v in read_back]

    try:
        held([6.089375034051434e16, 1e16, 2.5e20, -0.0, 0.0, 1e-7, 5e-324, 1.7976931348623157e308, [{"a": -1.5}]])
        settings(max_examples=150, deadline=None)(given(values=st.lists(_JSON, min_size=1, max_size=20))(held))()
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
