"""Page-wise encounter apply gives what applying the changes one by one gives: rows, addenda, stats, parked.

Two stores start from the same migrated file with the same patients; random pulled pages (new encounters,
drafts and completed ones, edits that win and lose, completions of local drafts, late edits of completed
encounters, addenda, encounters whose patient is not here yet, the same id more than once in a page) are
applied with `apply_encounters` on one and with the per-change path (`_apply_one` in page order, the
previous implementation) on the other; after each page the stores hold the same rows.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from desktop.services.patients import PatientService
from desktop.store import LocalStore, open_local_store
from desktop.sync.apply_encounters import PARKED_KEY, EncounterStats, _apply_one, apply_encounters
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.protocol import Change, JsonValue
from tests.desktop.conftest import copy_template

CLINIC = uuid.UUID("019ab000-0000-7000-8000-00000000c11c")
DOCTORS = [uuid.UUID("019ab000-0000-7000-8000-0000000d0c01"), uuid.UUID("019ab000-0000-7000-8000-0000000d0c02")]
BASE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

Apply = Callable[..., EncounterStats]


def apply_one_by_one(uow: Any, changes: list[Change], *, clinic_id: uuid.UUID, now: datetime) -> EncounterStats:
    """The per-change path (the implementation before the page-wise one): each change reads what is stored."""
    stats = EncounterStats()
    parked = [Change.model_validate(c) for c in json.loads(uow.sync_state.get(PARKED_KEY) or "[]")]
    for change in [*parked, *changes]:
        _apply_one(uow, change, clinic_id=clinic_id, now=now, stats=stats)
    waiting = [c.model_dump(mode="json", include=set(Change.model_fields)) for c in stats.parked]
    if waiting or parked:
        uow.sync_state.set(PARKED_KEY, json.dumps(waiting) if waiting else None)
    return stats


def run_apply(store: LocalStore, apply: Apply, changes: list[Change], now: datetime) -> EncounterStats:
    def go() -> EncounterStats:
        with store.uow.write() as uow:
            stats = apply(uow, changes, clinic_id=CLINIC, now=now)
            uow.commit()
        return stats

    result: EncounterStats = store.writer.run(go)
    return result


def snapshot(store: LocalStore) -> dict[str, Any]:
    """Every encounter and addendum row (in insertion order, rowid included) and the parked changes."""
    with store.uow.read() as uow:
        conn = uow.connection
        rows = {
            table: [tuple(r) for r in conn.exec_driver_sql(f"SELECT rowid, * FROM {table} ORDER BY rowid")]
            for table in ("encounters", "encounter_addenda")
        }
        rows["parked"] = uow.sync_state.get(PARKED_KEY)
        rows["patients"] = conn.execute(sa.text("SELECT count(*) FROM patients")).scalar_one()
    return rows


class Scenario:
    """Random pulled pages over a growing set of encounters, with stamps that sometimes win and sometimes lose."""

    def __init__(self, rng: random.Random, patients: list[uuid.UUID], later: list[uuid.UUID]) -> None:
        self.rng = rng
        self.patients, self.later = patients, later
        # id -> the server's state: fields and their stamps
        self.encounters: dict[uuid.UUID, tuple[dict[str, JsonValue], dict[str, str]]] = {}
        self.addenda: list[Change] = []
        self.wall = int(BASE.timestamp() * 1000)

    def stamp(self) -> str:
        """Mostly newer than the last, sometimes older (an edit that loses), on one of three nodes."""
        self.wall += self.rng.randint(1, 5_000)
        wall = self.wall - self.rng.randint(0, 60_000) if self.rng.random() < 0.3 else self.wall
        return encode(Stamp(wall, self.rng.randint(0, 3), self.rng.choice(["srv", "pc-a", "pc-b"])))

    def when(self) -> str:
        return (BASE + timedelta(minutes=self.rng.randint(0, 10_000))).isoformat().replace("+00:00", "Z")

    def sections(self) -> dict[str, JsonValue]:
        word = self.rng.choice(["fever", "cough", "knee pain", "rash", "acidity"])
        options: dict[str, JsonValue] = {
            "subjective": f"{word} for {self.rng.randint(1, 9)} days",
            "examination": f"examined: {word}",
            "objective": {"vitals": {"pulse": self.rng.randint(50, 120)}},
            "assessment": {"notes": f"likely {word}"},
            "plan": {"followup": f"review in {self.rng.randint(2, 30)} days", "investigations": ["CBC"]},
        }
        chosen = self.rng.sample(sorted(options), self.rng.randint(0, len(options)))
        return {name: options[name] for name in chosen}

    def status(self) -> dict[str, JsonValue]:
        if self.rng.random() < 0.5:
            return {"status": "completed", "completed_at": self.when()}
        return {"status": "draft", "completed_at": None}

    def change(self, fields: dict[str, JsonValue], stamps: dict[str, str], record_id: uuid.UUID) -> Change:
        return Change(
            kind="encounter", id=record_id, op="upsert", hlc=max(stamps.values()), fields=fields, field_hlcs=stamps
        )

    def new_encounter(self) -> Change:
        """A new encounter as the server sends it: its whole state, draft or completed."""
        record_id = uuid7()
        pool = self.later if self.later and self.rng.random() < 0.15 else self.patients
        fields: dict[str, JsonValue] = {
            "patient_id": str(self.rng.choice(pool)),
            "doctor_id": str(self.rng.choice(DOCTORS)),
            "encounter_type": self.rng.choice(["opd", "tele_video"]),
            "start_time": self.when(),
            "chief_complaint": self.rng.choice(["Fever", "Cough", "Joint pain"]),
        }
        fields |= self.sections() | self.status()
        stamp = self.stamp()
        self.encounters[record_id] = (fields, dict.fromkeys(fields, stamp))
        return self.change(*self.encounters[record_id], record_id)

    def edit(self, record_id: uuid.UUID) -> Change:
        """The encounter's whole state again after edits elsewhere: some fields with new stamps (a few older
        than what this PC holds: they lose), maybe completed (a draft here adopts it; a completed one here
        keeps its content and the newer values become an addendum)."""
        fields, stamps = (dict(x) for x in self.encounters[record_id])
        if self.rng.random() < 0.15:  # the same state again (a re-sent page, or this PC's own echo)
            return self.change(fields, stamps, record_id)
        changed = self.sections()
        if self.rng.random() < 0.3:
            changed["chief_complaint"] = self.rng.choice(["Fever, worse", "Cough at night"])
        if self.rng.random() < 0.2:
            changed["encounter_type"] = self.rng.choice(["opd", "home_visit"])
        if fields["status"] == "draft" and self.rng.random() < 0.35:
            changed |= {"status": "completed", "completed_at": self.when()}
        for name, value in changed.items():
            fields[name] = value
            stamps[name] = self.stamp()
        if "status" in changed:
            stamps["completed_at"] = stamps["status"]
        self.encounters[record_id] = (fields, stamps)
        return self.change(fields, stamps, record_id)

    def addendum(self) -> Change:
        if self.addenda and self.rng.random() < 0.2:
            return self.rng.choice(self.addenda)  # pulled again: stored once
        target = self.rng.choice(list(self.encounters))
        note: JsonValue = {"plan": {"followup": "call in a week"}} if self.rng.random() < 0.5 else None
        fields: dict[str, JsonValue] = {
            "encounter_id": str(target),
            "author_id": str(self.rng.choice(DOCTORS)),
            "text": f"addendum {self.rng.randint(1, 10**6)}",
            "soap_note": note,
            "created_at": self.when(),
        }
        stamp = self.stamp()
        change = Change(
            kind="encounter_addendum", id=uuid7(), op="upsert", hlc=stamp, fields=fields,
            field_hlcs=dict.fromkeys(fields, stamp),
        )  # fmt: skip
        self.addenda.append(change)
        return change

    def page(self, size: int) -> list[Change]:
        changes: list[Change] = []
        for _ in range(size):
            roll = self.rng.random()
            if not self.encounters or roll < 0.4:
                changes.append(self.new_encounter())
            elif roll < 0.8:
                # Often an encounter of this very page (a repeat of its id in one page).
                editable = list(self.encounters)
                in_page = [c.id for c in changes if c.id in editable]
                pool = in_page if in_page and self.rng.random() < 0.4 else editable
                if not pool:
                    changes.append(self.new_encounter())
                    continue
                changes.append(self.edit(self.rng.choice(pool)))
            else:
                changes.append(self.addendum())
        return changes


@pytest.fixture
def two_stores(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[LocalStore, LocalStore]]:
    stores = []
    for name in ("pagewise", "one-by-one"):
        path = copy_template(sqlite_template, tmp_path / name)
        stores.append(open_local_store(path, backups_dir=tmp_path / name / "backups"))
    try:
        yield stores[0], stores[1]
    finally:
        for store in stores:
            store.close()


def register(stores: tuple[LocalStore, ...], patient_id: uuid.UUID, n: int) -> None:
    for store in stores:
        service = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
        service.register({"id": str(patient_id), "name": f"Patient {n}", "gender": "F", "year_of_birth": 1980}, "t")


@pytest.mark.parametrize("seed", range(6))
def test_random_pages_give_the_same_store_as_one_change_at_a_time(
    two_stores: tuple[LocalStore, LocalStore], seed: int
) -> None:
    rng = random.Random(seed)
    patients = [uuid7() for _ in range(6)]
    later = [uuid7() for _ in range(2)]  # their encounters are parked until they are registered
    for n, patient_id in enumerate(patients):
        register(two_stores, patient_id, n)
    scenario = Scenario(rng, patients, later)
    pagewise, reference = two_stores
    seen = EncounterStats()
    for page_no in range(10):
        if page_no == 6:
            for n, patient_id in enumerate(later):
                register(two_stores, patient_id, 100 + n)
            scenario.later = []
        changes = scenario.page(rng.randint(1, 25))
        now = BASE + timedelta(hours=page_no)
        got = run_apply(pagewise, apply_encounters, changes, now)
        expected = run_apply(reference, apply_one_by_one, changes, now)
        assert got == expected, f"page {page_no}"
        assert snapshot(pagewise) == snapshot(reference), f"page {page_no}"
        for name in ("inserted", "updated", "unchanged", "conflicts", "addenda"):
            setattr(seen, name, getattr(seen, name) + getattr(got, name))
        seen.parked += got.parked
    # The pages went through every path: inserts, merges, no-ops, lost values, late addenda, parking.
    assert seen.inserted and seen.updated and seen.unchanged and seen.conflicts and seen.addenda and seen.parked


def test_a_page_of_new_completed_encounters_is_stored_as_sent(two_stores: tuple[LocalStore, LocalStore]) -> None:
    """The bench's case: a fresh PC pulls completed encounters of patients it has; every one is inserted."""
    pagewise, reference = two_stores
    rng = random.Random(7)
    patients = [uuid7() for _ in range(3)]
    for n, patient_id in enumerate(patients):
        register(two_stores, patient_id, n)
    scenario = Scenario(rng, patients, [])
    changes = []
    for _ in range(40):
        change = scenario.new_encounter()
        fields = dict(change.fields) | {"status": "completed", "completed_at": scenario.when()}
        changes.append(scenario.change(fields, dict(change.field_hlcs), change.id))
    got = run_apply(pagewise, apply_encounters, changes, BASE)
    assert got == run_apply(reference, apply_one_by_one, changes, BASE)
    assert (got.inserted, got.updated, got.unchanged, got.parked) == (40, 0, 0, [])
    assert snapshot(pagewise) == snapshot(reference)
    with pagewise.uow.read() as uow:
        statuses = uow.connection.execute(sa.text("SELECT status, count(*) FROM encounters GROUP BY status")).all()
    assert [tuple(r) for r in statuses] == [("completed", 40)]
    # Pulling the same page again (the PC's own echoes) changes nothing.
    again = run_apply(pagewise, apply_encounters, changes, BASE + timedelta(hours=1))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 40)
    assert again == run_apply(reference, apply_one_by_one, changes, BASE + timedelta(hours=1))
    assert snapshot(pagewise) == snapshot(reference)
