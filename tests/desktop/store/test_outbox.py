"""Outbox: append order, batches (mark, resend with the same id, ack, release), pending count, wire form."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from desktop.store import LocalStore, UnitOfWork
from shared.clock import encode
from shared.ids import uuid7
from shared.sync.protocol import Op, RecordKind

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
T = TypeVar("T")


def _write(store: LocalStore, fn: Callable[[UnitOfWork], T]) -> T:
    def run() -> T:
        with store.uow.write() as uow:
            result = fn(uow)
            uow.commit()
        return result

    return store.writer.run(run)


def _append(store: LocalStore, n: int) -> list[int]:
    def append(uow: UnitOfWork) -> list[int]:
        seqs = []
        for i in range(n):
            stamp = encode(store.clock.now())
            seqs.append(
                uow.outbox.append(
                    kind=RecordKind.PATIENT,
                    record_id=uuid7(),
                    op=Op.UPSERT,
                    fields={"name": f"P {i}"},
                    field_hlcs={"name": stamp},
                    hlc=stamp,
                    now=NOW,
                    actor="tester",
                )
            )
        return seqs

    return _write(store, append)


class TestOutbox:
    def test_unsent_entries_come_oldest_first(self, local_store: LocalStore) -> None:
        seqs = _append(local_store, 5)
        with local_store.uow.read() as uow:
            entries = uow.outbox.peek_unsent(3)
            assert [e.seq for e in entries] == seqs[:3]
            assert uow.outbox.pending_count() == 5
        assert entries[0].actor == "tester"
        assert entries[0].hlc < entries[1].hlc

    def test_batch_life_cycle(self, local_store: LocalStore) -> None:
        seqs = _append(local_store, 4)
        batch = uuid7()
        assert _write(local_store, lambda uow: uow.outbox.mark_batch(batch, seqs[:3])) == 3
        # Already marked entries are not taken by another batch.
        assert _write(local_store, lambda uow: uow.outbox.mark_batch(uuid7(), seqs[:3])) == 0

        with local_store.uow.read() as uow:
            assert [e.seq for e in uow.outbox.peek_unsent(10)] == seqs[3:]
            found = uow.outbox.find_unacked_batch()
        assert found is not None
        assert found[0] == batch
        assert [e.seq for e in found[1]] == seqs[:3]

        assert _write(local_store, lambda uow: uow.outbox.ack(batch, seqs[:2])) == 2
        assert _write(local_store, lambda uow: uow.outbox.release(batch)) == 1
        with local_store.uow.read() as uow:
            assert uow.outbox.find_unacked_batch() is None
            assert [e.seq for e in uow.outbox.peek_unsent(10)] == [seqs[2], seqs[3]]
            assert uow.outbox.pending_count() == 2
            assert all(e.acked for e in uow.outbox.list_batch(batch))

    def test_entry_becomes_a_protocol_change(self, local_store: LocalStore) -> None:
        (seq,) = _append(local_store, 1)
        with local_store.uow.read() as uow:
            (entry,) = uow.outbox.peek_unsent(1)
        change = entry.to_change()
        assert entry.seq == seq
        assert change.kind is RecordKind.PATIENT
        assert change.op is Op.UPSERT
        assert change.fields == {"name": "P 0"}
        assert change.field_hlcs == {"name": change.hlc}
        assert isinstance(change.id, uuid.UUID)

    def test_old_acknowledged_entries_can_be_cleared(self, local_store: LocalStore) -> None:
        seqs = _append(local_store, 3)
        batch = uuid7()
        _write(local_store, lambda uow: uow.outbox.mark_batch(batch, seqs[:2]))
        _write(local_store, lambda uow: uow.outbox.ack(batch))
        later = datetime(2026, 11, 26, tzinfo=UTC)
        assert _write(local_store, lambda uow: uow.outbox.delete_acked_before(later)) == 2
        with local_store.uow.read() as uow:
            assert [e.seq for e in uow.outbox.peek_unsent(10)] == seqs[2:]
            assert uow.outbox.pending_count() == 1
        assert _append(local_store, 1)[0] > seqs[-1]  # numbers are never reused
