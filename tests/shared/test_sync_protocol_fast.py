"""`Change`'s consistency check with its memo of known field names accepts and refuses exactly what the plain
per-field loop did, with the same errors (type, location, message), whatever order the inputs come in."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, model_validator

from shared.clock import Stamp, encode
from shared.sync import protocol
from shared.sync.protocol import DELETED_FIELD, Change, Op

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ReferenceChange(Change):
    """`Change` with the consistency check as it was before the memo."""

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceChange:
        if self.op is Op.DELETE:
            if self.fields or self.field_hlcs:
                raise ValueError("a delete carries no fields: it is a tombstone stamped with hlc")
            return self
        if not self.fields:
            raise ValueError("an upsert must change at least one field")
        if self.fields.keys() != self.field_hlcs.keys():
            raise ValueError("fields and field_hlcs must have the same keys (one stamp per field)")
        for name, stamp in self.field_hlcs.items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"field name {name!r:.80} must be snake_case, at most 64 characters")
            if stamp > self.hlc:
                raise ValueError(f"the stamp of field {name!r} is newer than the change's hlc")
        if DELETED_FIELD in self.fields and not isinstance(self.fields[DELETED_FIELD], bool):
            raise ValueError(f"field {DELETED_FIELD!r} must be true or false")
        return self


def _outcome(model: type[Change], data: dict[str, Any]) -> Any:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    return "accepted"


stamps = st.builds(
    lambda wall, counter, node: encode(Stamp(wall, counter, node)),
    st.integers(1_764_000_000_000, 1_764_000_000_003),
    st.integers(0, 2),
    st.sampled_from(["pc-a", "pc-b"]),
)
names = st.sampled_from(["name", "mobile", "deleted", "year_of_birth", "Name", "1st", "a" * 65, "x-y", ""]) | st.text(
    max_size=5
)
values = st.none() | st.booleans() | st.integers() | st.text(max_size=3)


@st.composite
def changes(draw: st.DrawFn) -> dict[str, Any]:
    field_names = draw(st.lists(names, max_size=4, unique=True))
    fields = {n: draw(values) for n in field_names}
    stamp_names = draw(st.sampled_from([field_names, field_names[:-1], [*field_names, "extra"]]))
    return {
        "kind": "patient",
        "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44",
        "op": draw(st.sampled_from(["upsert", "upsert", "delete"])),
        "hlc": draw(stamps | st.just("not a stamp")),
        "fields": fields,
        "field_hlcs": {n: draw(stamps) for n in stamp_names},
    }


@settings(max_examples=600)
@given(batch=st.lists(changes(), min_size=1, max_size=5), forget=st.booleans())
def test_new_and_old_checks_agree(batch: list[dict[str, Any]], forget: bool) -> None:
    if forget:  # with and without names already known from earlier examples
        protocol._KNOWN_FIELD_NAMES.clear()
    for data in batch:
        assert _outcome(Change, data) == _outcome(ReferenceChange, data)


def test_only_valid_names_are_remembered() -> None:
    data = {
        "kind": "patient",
        "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44",
        "op": "upsert",
        "hlc": encode(Stamp(1_764_000_000_001, 0, "pc-a")),
        "fields": {"good_name": 1, "Bad": 2},
        "field_hlcs": {"good_name": encode(Stamp(1_764_000_000_000, 0, "pc-a"))} | {"Bad": "x"},
    }
    assert _outcome(Change, data) == _outcome(ReferenceChange, data)
    data["field_hlcs"]["Bad"] = data["hlc"]
    assert _outcome(Change, data) == _outcome(ReferenceChange, data) != "accepted"
    assert "Bad" not in protocol._KNOWN_FIELD_NAMES
