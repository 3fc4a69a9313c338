"""The push's wire form of outbox entries, made from the stored JSON text, is the JSON `wire_change` makes.

`OutboxRepository.take_unsent` and `unacked_batch_wire` build each push change by cutting the stored payload
text instead of parsing and re-encoding it; these tests hold that to the parsing path, over arbitrary text
(quotes, backslashes, braces, the markers the cut looks for, every Unicode plane) and over a real store.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.store import LocalStore, UnitOfWork
from desktop.store.outbox import OutboxEntry, _split_payload, wire_text
from desktop.store.tables import JsonText
from desktop.sync.client import wire_change
from shared.clock import encode
from shared.ids import uuid7
from shared.sync.protocol import Op, RecordKind

NOW = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
MARKERS = ['","field_hlcs":{', '},"fields":', '{"actor":"', '"', "\\", "{", "}", "[", ",", ":"]

# Text SQLite can hold (no lone surrogates), biased towards the characters the cut looks for.
text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(st.sampled_from(MARKERS) | st.text(max_size=2, alphabet="a\u0928\U0001f600\x00\n"), max_size=6).map(
        "".join
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
stamps = st.dictionaries(text, text | st.sampled_from(["019ab4c27d10-0000-pc1"]), max_size=4)
_stored = JsonText()


def _entry(kind: str, record_id: uuid.UUID, op: str, hlc: str, payload: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry(
        seq=1,
        change_id=uuid.uuid4(),
        kind=kind,
        record_id=record_id,
        op=op,
        fields=dict(payload.get("fields", {})),
        field_hlcs=dict(payload.get("field_hlcs", {})),
        hlc=hlc,
        actor=payload.get("actor"),
        created_at=NOW,
        batch_id=None,
        acked=False,
    )


@settings(max_examples=400, deadline=None)
@given(
    kind=text,
    op=text,
    hlc=text,
    fields=st.dictionaries(text, json_values, max_size=4),
    field_hlcs=stamps,
    actor=st.none() | text,
    record_id=st.uuids(),
)
def test_wire_text_is_the_json_of_wire_change(
    kind: str,
    op: str,
    hlc: str,
    fields: dict[str, Any],
    field_hlcs: dict[str, str],
    actor: str | None,
    record_id: uuid.UUID,
) -> None:
    payload: dict[str, Any] = {"fields": fields, "field_hlcs": field_hlcs}
    if actor is not None:
        payload["actor"] = actor
    stored = _stored.process_bind_param(payload, None)  # type: ignore[arg-type]
    assert stored is not None
    # What the store gives back is the parsed payload: the reference is the old parse-and-dump path.
    entry = _entry(kind, record_id, op, hlc, _stored.process_result_value(stored, None))  # type: ignore[arg-type]
    expected = json.dumps(wire_change(entry), separators=(",", ":"))
    made = wire_text(kind, str(record_id), op, hlc, stored)
    assert json.loads(made) == json.loads(expected)
    assert list(json.loads(made)) == list(json.loads(expected))  # same keys in the same order
    assert list(json.loads(made)["fields"]) == list(json.loads(expected)["fields"])
    made.encode()  # valid UTF-8 text for the body
    plain_stamps = not any(c in s for item in field_hlcs.items() for s in item for c in "{[")
    plain_actor = actor is None or "\\" not in json.dumps(actor, ensure_ascii=False)
    if plain_stamps and plain_actor:  # what `append` stores in practice is cut, not parsed
        assert _split_payload(stored) is not None


@given(fields=st.dictionaries(text, json_values, max_size=3), field_hlcs=stamps)
def test_payloads_in_another_layout_take_the_parsing_path(fields: dict[str, Any], field_hlcs: dict[str, str]) -> None:
    record_id = uuid.UUID("019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44")
    payload = {"fields": fields, "field_hlcs": field_hlcs, "actor": "a"}  # unsorted, ASCII escapes, spaces
    stored = json.dumps(payload)
    entry = _entry("patient", record_id, "upsert", "h", json.loads(stored))
    made = wire_text("patient", str(record_id).upper(), "upsert", "h", stored)
    assert json.loads(made) == wire_change(entry) | {"id": str(record_id)}


def _append(store: LocalStore, rows: list[tuple[dict[str, Any], str | None]]) -> list[int]:
    def run() -> list[int]:
        with store.uow.write() as uow:
            seqs = []
            for fields, actor in rows:
                stamp = encode(store.clock.now())
                seqs.append(
                    uow.outbox.append(
                        kind=RecordKind.PATIENT,
                        record_id=uuid7(),
                        op=Op.UPSERT,
                        fields=fields,
                        field_hlcs=dict.fromkeys(fields, stamp),
                        hlc=stamp,
                        now=NOW,
                        actor=actor,
                    )
                )
            uow.commit()
            return seqs

    return store.writer.run(run)


def test_take_unsent_marks_and_returns_what_peek_and_mark_would(local_store: LocalStore) -> None:
    rows = [
        ({"name": 'रमेश "कुमार" \\ }', "address": {"line": '},"fields":{'}}, "tester"),
        ({"name": "Asha"}, None),
        ({"name": "Meena", "year_of_birth": 1980}, 'odd "actor"'),
    ]
    seqs = _append(local_store, rows * 2)
    with local_store.uow.read() as uow:
        expected = [wire_change(e) for e in uow.outbox.peek_unsent(4)]
    batch_id = uuid7()

    def take(uow: UnitOfWork) -> Any:
        return uow.outbox.take_unsent(batch_id, 4)

    def run() -> Any:
        with local_store.uow.write() as uow:
            taken = take(uow)
            uow.commit()
            return taken

    taken = local_store.writer.run(run)
    assert [e.seq for e in taken] == seqs[:4]
    assert [json.loads(e.wire) for e in taken] == expected
    assert [e.record_id for e in taken] == [uuid.UUID(c["id"]) for c in expected]  # type: ignore[arg-type]
    with local_store.uow.read() as uow:
        assert [e.seq for e in uow.outbox.list_batch(batch_id)] == seqs[:4]
        assert [e.seq for e in uow.outbox.peek_unsent(10)] == seqs[4:]
        found = uow.outbox.unacked_batch_wire()
        assert found is not None and found[0] == batch_id
        assert [e.wire for e in found[1]] == [e.wire for e in taken]
    # Acknowledged entries leave the resend set; the batch is gone once all are.
    local_store.writer.run(lambda: _ack(local_store, batch_id, seqs[:1]))
    with local_store.uow.read() as uow:
        found = uow.outbox.unacked_batch_wire()
        assert found is not None and [e.seq for e in found[1]] == seqs[1:4]
    local_store.writer.run(lambda: _ack(local_store, batch_id, None))
    with local_store.uow.read() as uow:
        assert uow.outbox.unacked_batch_wire() is None


def _ack(store: LocalStore, batch_id: uuid.UUID, seqs: list[int] | None) -> None:
    with store.uow.write() as uow:
        uow.outbox.ack(batch_id, seqs)
        uow.commit()
