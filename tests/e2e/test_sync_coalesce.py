"""A visit written offline — patient registered and corrected, encounter started, saved twice, completed — goes
to the server as one change per record run (`desktop.sync.coalesce`), and the server, the PC and a second PC end
with exactly the records the PC holds; every queued entry is acknowledged with its run's result."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import httpx

from desktop.sync.transport import Transport, encode_json
from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from tests.e2e.conftest import PC, Server, server_snapshot
from tests.e2e.test_encounter_sync import RADHA, VISIT, encounters, enroll, note, server_encounter

PUSH = "/api/v1/sync/push"


class PushRecorder(httpx.BaseTransport):
    """Keeps the changes of every push request sent (real HTTP to the real server underneath)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.pushed: list[list[dict[str, object]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == PUSH:
            body = request.read()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            self.pushed.append(json.loads(body)["changes"])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_visit_written_offline_goes_as_one_change_per_record_and_lands_whole(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    recorder = PushRecorder()

    def factory(url: str) -> Transport:
        return Transport(url, http=httpx.Client(transport=recorder, trust_env=False))

    a, b = make_pc("pc-a", transport_factory=factory), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    visits = encounters(a)
    p = a.patients.register(RADHA, actor="test")
    a.patients.update(p.id, {"name": "राधा कुमारी शर्मा"}, "test")  # corrected at the desk
    a.patients.update(p.id, {"mobile": "+919812300002"}, "test")
    e = visits.start({**VISIT, "patient_id": p.id, "soap_note": {"subjective": "Fever"}}, doctor)
    seen = {"subjective": "Fever and cough", "examination": "Chest clear"}
    visits.save_draft(e.id, {"soap_note": seen})
    visits.save_draft(e.id, {"soap_note": {**seen, "plan": {"followup": "1 week"}}})
    visits.complete(e.id)
    other = a.patients.register({**RADHA, "name": "सीता देवी", "mobile": "+919812300003"}, actor="test")
    assert a.store is not None
    with a.store.uow.read() as uow:
        queued = uow.outbox.pending_count()
    assert queued == 8

    report = a.sync()
    assert report.complete and not report.rejected
    assert report.pushed == report.applied + report.merged == queued  # every entry answered
    sent = [c for batch in recorder.pushed for c in batch]
    assert [(c["kind"], c["id"]) for c in sent] == [
        ("patient", str(p.id)),
        ("encounter", str(e.id)),
        ("patient", str(other.id)),
    ]
    with a.store.uow.read() as uow:
        assert uow.outbox.pending_count() == 0

    # The server holds what the PC holds, and so does the clinic's other PC after its pull.
    on_server = server_snapshot(server, sandbox_url)
    assert on_server == a.snapshot()
    assert on_server[str(p.id)]["name"] == "राधा कुमारी शर्मा" and on_server[str(p.id)]["mobile"] == "+919812300002"
    visit = server_encounter(server, sandbox_url, e.id)
    assert visit["status"] == "completed" and visit["soap_note"] == note(a, e.id)
    assert visit["soap_note"]["subjective"] == "Fever and cough" and visit["addenda"] == []
    b.sync()
    assert b.snapshot() == a.snapshot()
    assert note(b, e.id) == note(a, e.id) and encounters(b).get(e.id).status == "completed"


def test_a_batch_first_sent_unmerged_by_an_older_app_is_answered_per_entry_after_the_upgrade(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    """The older app sent the batch change by change and lost the reply; the server keeps that first answer for
    the batch id. The upgraded app re-sends the batch merged, gets the stored answer (one result per entry),
    and every entry takes its own result: the queue drains instead of failing every round."""
    a = make_pc("pc-a")
    a.enroll()
    p = a.patients.register(RADHA, actor="test")
    a.patients.update(p.id, {"mobile": "+919812300002"}, "test")
    a.patients.update(p.id, {"name": "राधा कुमारी शर्मा"}, "test")
    assert a.store is not None
    client = a.client()
    taken = a.store.writer.run(client._take_unsent)  # handed to a batch, as the older app did before sending
    assert taken is not None
    batch_id, entries = taken
    enrolment = a.auth.enrolment()
    assert enrolment is not None
    unmerged = (
        f'{{"batch_id":"{batch_id}","device_id":"{enrolment.device_id}","schema_version":{RECORD_SCHEMA_VERSION},'
        f'"protocol_version":{PROTOCOL_VERSION},"changes":[' + ",".join(e.wire for e in entries) + "]}"
    )
    first = client._transport.push_encoded(encode_json(unmerged.encode()))  # its reply "lost": never recorded
    assert len(first.results) == len(entries) == 3

    report = a.sync()  # the upgraded app: the unacknowledged batch again, merged into one change, same id
    assert report.complete and not report.rejected and report.pushed == 3
    with a.store.uow.read() as uow:
        assert uow.outbox.pending_count() == 0
    assert server_snapshot(server, sandbox_url) == a.snapshot()
