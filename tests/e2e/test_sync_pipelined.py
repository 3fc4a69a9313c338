"""Pipelined push batches and pull pages (`SyncClient`): order, idempotent retries and page atomicity hold.

The client takes and encodes batch n+1 while batch n is on the wire, and fetches page n+1 while page n is
applied; these tests use small batches and pages so that every round has several of each.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from itertools import pairwise

import httpx
import pytest

from desktop.errors import ServerUnreachable
from desktop.store.outbox import OutboxEntry
from desktop.store.patients import BULK_INDEX_FROM
from desktop.sync.client import SyncClient, wire_change
from desktop.sync.transport import NEXT_CURSOR_HEADER, RetryPolicy, Transport
from shared.sync.protocol import Change
from tests.e2e.conftest import PC, Server, server_snapshot

PUSH = "/api/v1/sync/push"


class DropNthPushReply(httpx.BaseTransport):
    """Push ``n`` reaches the server, which applies it, but its reply is lost on the way back (torn link)."""

    def __init__(self, n: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.n = n
        self.pushes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == PUSH:
            self.pushes += 1
            if self.pushes == self.n:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def _client(pc: PC, *, batch_size: int = 500, page_size: int = 1000) -> SyncClient:
    assert pc.store is not None
    enrolment = pc.auth.enrolment()
    token = pc.auth.device_token()
    assert enrolment is not None and token is not None
    transport = pc.transport()
    transport.use_device(enrolment.device_id, token)
    return SyncClient(
        pc.store.uow,
        transport,
        pc.store.clock,
        device_id=enrolment.device_id,
        batch_size=batch_size,
        page_size=page_size,
    )


def _register(pc: PC, count: int, start: int = 0) -> list[uuid.UUID]:
    return [
        pc.patients.register(
            {"name": f"Pipelined {n}", "gender": "F", "year_of_birth": 1990, "mobile": f"+9198124{n:05d}"},
            actor="test",
        ).id
        for n in range(start, start + count)
    ]


def test_a_lost_reply_in_the_middle_of_pipelined_batches_is_resent_with_its_id(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    dropper = DropNthPushReply(2)

    def factory(url: str) -> Transport:
        return Transport(
            url,
            http=httpx.Client(transport=dropper, trust_env=False),
            retry=RetryPolicy(attempts=1, base_s=0.0, max_s=0.0),
        )

    a = make_pc("pc-a", transport_factory=factory)
    a.enroll()
    ids = _register(a, 11)
    with pytest.raises(ServerUnreachable):
        _client(a, batch_size=3).run_once()
    # Batches 1 and 2 reached the server (2's reply was lost); batch 3 was taken while 2 was on the wire.
    assert len(server_snapshot(server, sandbox_url)) == 6
    assert a.store is not None
    with a.store.uow.read() as uow:
        assert uow.outbox.pending_count() == 8  # 3 acknowledged; 2 and 3 handed out, unanswered; 2 unsent
        handed_out = uow.connection.exec_driver_sql(
            "SELECT count(DISTINCT batch_id) FROM outbox WHERE batch_id IS NOT NULL AND acked = 0"
        ).scalar_one()
    assert handed_out == 2

    report = _client(a, batch_size=3).run_once()  # batch 2 again (same id: first answer), then 3, then the rest
    assert report.complete and report.pushed == 8 and report.applied == 8 and not report.rejected
    on_server = server_snapshot(server, sandbox_url)
    assert set(on_server) == {str(i) for i in ids}
    with a.store.uow.read() as uow:
        batches = uow.connection.exec_driver_sql(
            "SELECT batch_id, min(seq), max(seq), count(*) FROM outbox GROUP BY batch_id ORDER BY min(seq)"
        ).all()
    # Queue order kept: every batch is a run of consecutive entries, and the batches follow one another.
    assert [row[3] for row in batches] == [3, 3, 3, 2]
    assert all(row[2] - row[1] == row[3] - 1 for row in batches)
    assert all(prev[2] < nxt[1] for prev, nxt in pairwise(batches))


def test_paged_first_sync_with_pages_fetched_ahead_and_bulk_indexed(make_pc: Callable[..., PC]) -> None:
    a, b, c = make_pc("pc-a"), make_pc("pc-b"), make_pc("pc-c")
    for pc in (a, b, c):
        pc.enroll()
    count = BULK_INDEX_FROM + 20
    _register(a, count)
    assert _client(a, batch_size=25).run_once().complete

    small = _client(b, page_size=7).run_once()  # pages of 7: several fetched ahead, trigger path
    large = _client(c, page_size=BULK_INDEX_FROM + 5).run_once()  # a first page big enough for the bulk path
    assert small.complete and small.inserted == count and small.pages == -(-count // 7)
    assert large.complete and large.inserted == count and large.pages == 2
    assert b.snapshot() == c.snapshot() == a.snapshot()
    for pc in (b, c):  # the search index holds every pulled patient, by name and by mobile digits
        assert len(pc.patients.search("pipelined", limit=1000)) == count
        assert [p.name for p in pc.patients.search("9812400003")] == ["Pipelined 3"]

    # An edit on A reaches B and C; their own echoes and records they have are skipped, not re-merged.
    target = next(p for p in a.patients.all_patients() if p.name == "Pipelined 3")
    a.patients.update(target.id, {"mobile": "+919812499999"}, "test")
    echo = _client(a).run_once()
    assert echo.complete and echo.pulled == 1 and echo.updated == 0
    for pc in (b, c):
        report = _client(pc).run_once()
        assert report.pulled == 1 and report.updated == 1
        assert [p.name for p in pc.patients.search("99999")] == ["Pipelined 3"]


def test_outbox_entries_go_out_as_protocol_changes_whatever_their_kind() -> None:
    entry = OutboxEntry(
        seq=1,
        change_id=uuid.uuid4(),
        kind="patient",
        record_id=uuid.UUID("019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44"),
        op="upsert",
        fields={"mobile": "+919812345678", "address": None},
        field_hlcs={"mobile": "019ab4c27d10-0000-pc1", "address": "019ab4c27a00-0002-pc1"},
        hlc="019ab4c27d10-0000-pc1",
        actor=None,
        created_at=None,  # type: ignore[arg-type]
        batch_id=None,
        acked=False,
    )
    assert Change.model_validate(wire_change(entry)) == entry.to_change()
    # A kind this version's protocol models do not list yet still goes out as queued (the server decides).
    reading = OutboxEntry(**{**entry.__dict__, "kind": "reading"})
    assert wire_change(reading)["kind"] == "reading"
    assert {k: v for k, v in wire_change(reading).items() if k != "kind"} == {
        k: v for k, v in wire_change(entry).items() if k != "kind"
    }


PULL = "/api/v1/sync/pull"


class RewriteNextCursor(httpx.BaseTransport):
    """Pull answers with their ``X-IntegMed-Next-Cursor`` header dropped (an older server) or replaced by a cursor
    that is not the page's (a lying hint); every request is recorded with its cursor."""

    def __init__(self, hint: Callable[[str], str | None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.hint = hint
        self.asked: list[str | None] = []
        self.named: dict[str | None, str] = {}  # the cursor each request asked with -> the server's next cursor

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != PULL:
            return response
        self.asked.append(request.url.params.get("cursor"))
        response.read()  # the body decoded: it goes on without its content encoding
        dropped = {NEXT_CURSOR_HEADER.lower().encode(), b"content-encoding", b"content-length"}
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in dropped]
        named = response.headers.get(NEXT_CURSOR_HEADER)
        if named is not None:
            self.named[request.url.params.get("cursor")] = named
            changed = self.hint(named)
            if changed is not None:
                headers.append((NEXT_CURSOR_HEADER.encode(), changed.encode()))
        return httpx.Response(response.status_code, headers=headers, content=response.content)

    def close(self) -> None:
        self.inner.close()

    def chain(self) -> list[str | None]:
        """The cursors of the feed's pages from the start, as the server named them."""
        cursors: list[str | None] = [None]
        while cursors[-1] in self.named:
            cursors.append(self.named[cursors[-1]])
        return cursors


def _pc_with(make_pc: Callable[..., PC], name: str, wire: httpx.BaseTransport) -> PC:
    def factory(url: str) -> Transport:
        return Transport(url, http=httpx.Client(transport=wire, trust_env=False), retry=RetryPolicy(attempts=1))

    pc = make_pc(name, transport_factory=factory)
    pc.enroll()
    return pc


def _stored_cursor(pc: PC) -> str | None:
    assert pc.store is not None
    with pc.store.uow.read() as uow:
        return uow.sync_state.pull_cursor()


@pytest.mark.parametrize(
    ("hint", "wasted"),
    [
        (lambda named: named, 0),  # the server's own hint: each page asked for once, before the previous is parsed
        (lambda named: None, 0),  # an older server names no cursor: asked for after parsing, as before
        (lambda named: "1", None),  # a hint that is not the page's: wasted requests, the right pages applied
    ],
    ids=["hint", "no-hint", "wrong-hint"],
)
def test_pages_asked_for_on_the_servers_hint_are_applied_once_each_in_order(
    make_pc: Callable[..., PC], hint: Callable[[str], str | None], wasted: int | None
) -> None:
    a = make_pc("pc-a")
    a.enroll()
    count = 30
    _register(a, count)
    assert _client(a, batch_size=50).run_once().complete
    wire = RewriteNextCursor(hint)
    b = _pc_with(make_pc, "pc-b", wire)

    report = _client(b, page_size=4).run_once()

    pages = -(-count // 4)
    assert report.complete and report.pages == pages and report.pulled == report.inserted == count
    assert b.snapshot() == a.snapshot()
    chain = wire.chain()
    assert len(chain) == pages  # the server names the next cursor on every page but the last
    assert _stored_cursor(b) == _stored_cursor(a)  # the last page's cursor, as without pages fetched ahead
    # Every page of the feed was asked for once, with the cursor of the page before it, in order.
    assert [cursor for cursor in wire.asked if cursor in chain] == chain
    if wasted is not None:
        assert len(wire.asked) == pages + wasted
    else:
        assert len(wire.asked) > pages  # the wrong hints were asked for too, and their pages dropped


def test_a_page_fetched_ahead_that_fails_stops_the_round_after_the_pages_before_it(
    make_pc: Callable[..., PC],
) -> None:
    a = make_pc("pc-a")
    a.enroll()
    _register(a, 12)
    assert _client(a, batch_size=50).run_once().complete

    class FailThirdPull(RewriteNextCursor):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == PULL and len(self.asked) == 2:
                self.asked.append(request.url.params.get("cursor"))
                raise httpx.ConnectError("link down", request=request)
            return super().handle_request(request)

    wire = FailThirdPull(lambda named: named)
    b = _pc_with(make_pc, "pc-b", wire)
    with pytest.raises(ServerUnreachable):
        _client(b, page_size=4).run_once()
    assert b.store is not None
    with b.store.uow.read() as uow:
        assert uow.patients.count() == 8  # pages 1 and 2 applied with their cursors; page 3 never came
    assert _stored_cursor(b) == wire.chain()[2]  # page 2's next cursor

    report = _client(b, page_size=4).run_once()  # the next round goes on from the stored cursor
    assert report.complete and report.pulled == 4 and b.snapshot() == a.snapshot()
