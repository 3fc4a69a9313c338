"""The transactional outbox: local changes waiting to be pushed, appended in the same transaction as the write.

Life of an entry (DESIGN §4): `append` (unsent) → `mark_batch` (handed to push batch ``batch_id``) →
`ack` (the server answered for it). A batch that was marked but never answered (crash, network) is found
again by `find_unacked_batch` and must be re-sent **with the same batch id**, which is what makes a retried
push idempotent on the server. `release` puts entries back in the unsent queue (e.g. after a ``clock_skew``
rejection, to send them again in a later batch once the clock is fixed). Acknowledged entries stay in the
table as a local log of what was sent until `delete_acked_before` clears old ones. ``seq`` is AUTOINCREMENT,
so a deleted entry's number is never handed out again.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from desktop.store.tables import outbox
from shared.ids import uuid7
from shared.sync.protocol import Change, JsonValue, Op, RecordKind

_IN_CHUNK = 500  # stay far below SQLite's limit on bound parameters
_INSERT = outbox.insert()  # compiled once; values are passed as parameters

# The push reads the outbox with plain SQL: columns as SQLite stores them, no per-row type processing.
_WIRE_COLUMNS = "seq, kind, record_id, op, hlc, payload"
_UNSENT_WIRE = f"SELECT {_WIRE_COLUMNS} FROM outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?"
_BATCH_WIRE = f"SELECT {_WIRE_COLUMNS} FROM outbox WHERE batch_id = ? AND acked = 0 ORDER BY seq"
_MARK_THROUGH = "UPDATE outbox SET batch_id = ? WHERE batch_id IS NULL AND seq <= ?"

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _json_str(text: str) -> str:
    # Printable ASCII without quote or backslash: the JSON string is the text between quotes.
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return json.dumps(text)


@dataclass(frozen=True, slots=True)
class QueuedChange:
    """An outbox entry as a push batch carries it: the change's JSON text, made from the stored text.

    Args:
        seq: position in the queue.
        kind: record kind text.
        record_text: the record id, canonical text.
        hlc: the change's stamp.
        wire: the push change (`shared.sync.protocol.Change` JSON) as compact JSON text.
        op: ``upsert`` or ``delete``.
    """

    seq: int
    kind: str
    record_text: str
    hlc: str
    wire: str
    op: str = "upsert"

    @property
    def record_id(self) -> uuid.UUID:
        return uuid.UUID(self.record_text)


def _split_payload(payload: str) -> tuple[str, str] | None:
    """The field stamps' and the fields' JSON texts inside a payload text as `append` stores it, or ``None``.

    `append` writes ``{"actor": …, "field_hlcs": {…}, "fields": …}`` through `JsonText` (compact, keys sorted,
    the actor optional): fields come last. Inside a JSON string a ``"`` is always escaped, so ``,"`` never
    occurs there; the markers below therefore only match between tokens. The stamps must be a flat object
    (no ``{`` or ``[`` after its opening brace), so its first ``},"fields":`` is its end. Anything else
    (an actor with quotes or escapes, another layout) is left to the parsing path.
    """
    if payload.startswith('{"actor":"'):
        cut = payload.find('","field_hlcs":{', 10)
        if cut < 0 or "\\" in payload[10:cut] or '"' in payload[10:cut]:
            return None
        start = cut + 15
    elif payload.startswith('{"field_hlcs":{'):
        start = 14
    else:
        return None
    end = payload.find('},"fields":', start)
    if end < 0 or not payload.endswith("}"):
        return None
    stamps = payload[start : end + 1]
    if "{" in stamps[1:] or "[" in stamps:
        return None
    return stamps, payload[end + 11 : -1]


def wire_text(kind: str, record_text: str, op: str, hlc: str, payload: str) -> str:
    """The push change of one stored outbox row, as JSON text, without parsing its payload.

    The same JSON value as ``json.dumps`` of `desktop.sync.client.wire_change` of the entry (same keys in the
    same order; non-ASCII characters travel as UTF-8 rather than ``\\u`` escapes). A payload not in the shape
    `append` writes is parsed and re-encoded instead.
    """
    if not _CANONICAL_UUID.fullmatch(record_text):
        record_text = str(uuid.UUID(record_text))
    split = _split_payload(payload)
    if split is None:
        data = json.loads(payload)
        split = (
            json.dumps(data.get("field_hlcs", {}), ensure_ascii=False, separators=(",", ":")),
            json.dumps(data.get("fields", {}), ensure_ascii=False, separators=(",", ":")),
        )
    return (
        f'{{"kind":{_json_str(kind)},"id":"{record_text}","op":{_json_str(op)},"hlc":{_json_str(hlc)},'
        f'"fields":{split[1]},"field_hlcs":{split[0]}}}'
    )


def _queued(rows: Iterable[tuple[int, str, str, str, str, str]]) -> list[QueuedChange]:
    return [
        QueuedChange(seq, kind, record_text, hlc, wire_text(kind, record_text, op, hlc, payload), op)
        for seq, kind, record_text, op, hlc, payload in rows
    ]


@dataclass(frozen=True)
class OutboxEntry:
    """One queued change.

    Args:
        seq: position in the queue (AUTOINCREMENT: never reused, so order is append order).
        change_id: the change's own id.
        kind: record kind, e.g. ``patient``.
        record_id: the changed record.
        op: ``upsert`` or ``delete``.
        fields: the fields changed, JSON values (empty for a delete).
        field_hlcs: one encoded stamp per changed field.
        hlc: the change's stamp (the greatest field stamp).
        actor: who made the change on this PC (user id or ``cli``), when known.
        created_at: when it was queued.
        batch_id: the push batch it was handed to, or ``None`` while unsent.
        acked: whether the server has answered for it.
    """

    seq: int
    change_id: uuid.UUID
    kind: str
    record_id: uuid.UUID
    op: str
    fields: dict[str, JsonValue]
    field_hlcs: dict[str, str]
    hlc: str
    actor: str | None
    created_at: datetime
    batch_id: uuid.UUID | None
    acked: bool

    def to_change(self) -> Change:
        """The entry as a push `shared.sync.protocol.Change`."""
        return Change(
            kind=RecordKind(self.kind),
            id=self.record_id,
            op=Op(self.op),
            hlc=self.hlc,
            fields=self.fields,
            field_hlcs=self.field_hlcs,
        )


def _entry(row: sa.Row[tuple[object, ...]]) -> OutboxEntry:
    m = row._mapping
    payload = m["payload"]
    return OutboxEntry(
        seq=m["seq"],
        change_id=m["change_id"],
        kind=m["kind"],
        record_id=m["record_id"],
        op=m["op"],
        fields=dict(payload.get("fields", {})),
        field_hlcs=dict(payload.get("field_hlcs", {})),
        hlc=m["hlc"],
        actor=payload.get("actor"),
        created_at=m["created_at"],
        batch_id=m["batch_id"],
        acked=bool(m["acked"]),
    )


def _chunks(values: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


class OutboxRepository:
    """Outbox reads and writes on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def append(
        self,
        *,
        kind: RecordKind,
        record_id: uuid.UUID,
        op: Op,
        fields: Mapping[str, JsonValue],
        field_hlcs: Mapping[str, str],
        hlc: str,
        now: datetime,
        actor: str | None = None,
    ) -> int:
        """Queue a change (in the caller's transaction, next to the write it describes).

        Returns:
            The entry's ``seq``.
        """
        payload: dict[str, JsonValue] = {"fields": dict(fields), "field_hlcs": dict(field_hlcs)}
        if actor is not None:
            payload["actor"] = actor
        result = self._conn.execute(
            _INSERT,
            {
                "change_id": uuid7(),
                "kind": str(kind),
                "record_id": record_id,
                "op": str(op),
                "payload": payload,
                "hlc": hlc,
                "created_at": now,
                "batch_id": None,
                "acked": False,
            },
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def peek_unsent(self, limit: int) -> list[OutboxEntry]:
        """The oldest entries not yet handed to a batch, oldest first."""
        rows = self._conn.execute(
            sa.select(outbox).where(outbox.c.batch_id.is_(None)).order_by(outbox.c.seq).limit(limit)
        )
        return [_entry(row) for row in rows]

    def take_unsent(self, batch_id: uuid.UUID, limit: int) -> list[QueuedChange]:
        """Hand the oldest ``limit`` unsent entries to push batch ``batch_id`` and return them as wire changes.

        Same as `peek_unsent` then `mark_batch` of their seqs (in the caller's write transaction: the entries
        read are exactly the unsent ones up to the last seq read), with one plain read and one UPDATE.
        """
        rows = self._conn.exec_driver_sql(_UNSENT_WIRE, (limit,)).fetchall()
        if not rows:
            return []
        entries = _queued(rows)
        marked = self._conn.exec_driver_sql(_MARK_THROUGH, (str(batch_id), entries[-1].seq)).rowcount
        if marked != len(entries):
            raise RuntimeError(f"outbox changed under a push batch ({marked} marked, {len(entries)} read)")
        return entries

    def unacked_batch_wire(self) -> tuple[uuid.UUID, list[QueuedChange]] | None:
        """`find_unacked_batch` as wire changes: the oldest batch marked but not fully acknowledged."""
        batch_id = self._conn.execute(
            sa.select(outbox.c.batch_id)
            .where(outbox.c.batch_id.is_not(None), outbox.c.acked == sa.false())
            .order_by(outbox.c.seq)
            .limit(1)
        ).scalar_one_or_none()
        if batch_id is None:
            return None
        return batch_id, _queued(self._conn.exec_driver_sql(_BATCH_WIRE, (str(batch_id),)).fetchall())

    def mark_batch(self, batch_id: uuid.UUID, seqs: Iterable[int]) -> int:
        """Hand unsent entries to push batch ``batch_id``; entries already in a batch are left alone.

        Returns:
            How many entries were marked.
        """
        marked = 0
        for chunk in _chunks(sorted(set(seqs))):
            marked += self._conn.execute(
                outbox.update().where(outbox.c.seq.in_(chunk), outbox.c.batch_id.is_(None)).values(batch_id=batch_id)
            ).rowcount
        return marked

    def list_batch(self, batch_id: uuid.UUID) -> list[OutboxEntry]:
        """The entries of one batch, in queue order."""
        rows = self._conn.execute(sa.select(outbox).where(outbox.c.batch_id == batch_id).order_by(outbox.c.seq))
        return [_entry(row) for row in rows]

    def find_unacked_batch(self) -> tuple[uuid.UUID, list[OutboxEntry]] | None:
        """The oldest batch that was marked but not fully acknowledged (resend it with the same id)."""
        batch_id = self._conn.execute(
            sa.select(outbox.c.batch_id)
            .where(outbox.c.batch_id.is_not(None), outbox.c.acked == sa.false())
            .order_by(outbox.c.seq)
            .limit(1)
        ).scalar_one_or_none()
        if batch_id is None:
            return None
        return batch_id, [entry for entry in self.list_batch(batch_id) if not entry.acked]

    def ack(self, batch_id: uuid.UUID, seqs: Iterable[int] | None = None) -> int:
        """Record that the server answered for a batch (or for some of its entries).

        Returns:
            How many entries were newly acknowledged.
        """
        condition = sa.and_(outbox.c.batch_id == batch_id, outbox.c.acked == sa.false())
        if seqs is None:
            return self._conn.execute(outbox.update().where(condition).values(acked=True)).rowcount
        acked = 0
        for chunk in _chunks(sorted(set(seqs))):
            acked += self._conn.execute(
                outbox.update().where(condition, outbox.c.seq.in_(chunk)).values(acked=True)
            ).rowcount
        return acked

    def release(self, batch_id: uuid.UUID, seqs: Iterable[int] | None = None) -> int:
        """Put unacknowledged entries of a batch back in the unsent queue (to be sent in a later batch).

        Only for entries the server has definitely not applied (it rejected them, or the batch never
        reached it); anything else must be resent with its original batch id.

        Returns:
            How many entries were released.
        """
        condition = sa.and_(outbox.c.batch_id == batch_id, outbox.c.acked == sa.false())
        if seqs is None:
            return self._conn.execute(outbox.update().where(condition).values(batch_id=None)).rowcount
        released = 0
        for chunk in _chunks(sorted(set(seqs))):
            released += self._conn.execute(
                outbox.update().where(condition, outbox.c.seq.in_(chunk)).values(batch_id=None)
            ).rowcount
        return released

    def pending_count(self) -> int:
        """How many changes the server has not acknowledged yet (unsent or in flight)."""
        # Plain SQL (the partial index ``outbox_pending``): asked twice in every sync round, idle ones included,
        # where building the statement with SQLAlchemy Core cost more than running it.
        return int(self._conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE acked = 0").scalar_one())

    def delete_acked_before(self, when: datetime) -> int:
        """Forget acknowledged entries queued before ``when`` (the server has them; this is housekeeping).

        Returns:
            How many entries were deleted.
        """
        condition = sa.and_(outbox.c.acked == sa.true(), outbox.c.created_at < when)
        return self._conn.execute(outbox.delete().where(condition)).rowcount

    def max_hlc(self) -> str | None:
        """The greatest stamp ever queued (for restoring the clock after a restart)."""
        value = self._conn.execute(sa.select(sa.func.max(outbox.c.hlc))).scalar_one_or_none()
        return None if value is None else str(value)
