"""Sync wire protocol models: examples, validation rules and JSON round trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync import protocol
from shared.sync.protocol import (
    MAX_PUSH_CHANGES,
    Change,
    ChangeResult,
    ChangeStatus,
    PulledChange,
    PullResponse,
    PushRequest,
    PushResponse,
    RecordKind,
    RejectCode,
)

MODELS: list[type[BaseModel]] = [Change, PushRequest, ChangeResult, PushResponse, PulledChange, PullResponse]
H1 = encode(Stamp(1_764_000_000_000, 0, "pc-a"))
H2 = encode(Stamp(1_764_000_000_000, 1, "pc-a"))


def upsert(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "patient",
        "id": str(uuid7()),
        "op": "upsert",
        "hlc": H2,
        "fields": {"name": "Asha", "mobile": None},
        "field_hlcs": {"name": H1, "mobile": H2},
    }
    body.update(overrides)
    return body


def push(changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "batch_id": str(uuid7()),
        "device_id": str(uuid7()),
        "schema_version": RECORD_SCHEMA_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "changes": changes,
    }


def error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " | ".join(str(e["msg"]) for e in exc.value.errors())


class TestExamples:
    @pytest.mark.parametrize("model", MODELS)
    def test_every_example_validates_and_round_trips(self, model: type[BaseModel]) -> None:
        examples = model.model_json_schema()["examples"]
        assert examples
        for example in examples:
            parsed = model.model_validate(example)
            assert model.model_validate_json(parsed.model_dump_json()) == parsed

    @pytest.mark.parametrize("model", MODELS)
    def test_unknown_keys_are_refused(self, model: type[BaseModel]) -> None:
        example = model.model_json_schema()["examples"][0]
        with pytest.raises(ValidationError) as info:
            model.model_validate({**example, "surprise": 1})
        assert info.value.errors()[0]["type"] == "extra_forbidden"

    def test_versions_come_from_the_shared_package(self) -> None:
        assert protocol.PROTOCOL_VERSION == PROTOCOL_VERSION
        assert protocol.RECORD_SCHEMA_VERSION == RECORD_SCHEMA_VERSION


class TestWireNames:
    """The strings on the wire are a contract with deployed desktops: renaming one breaks them."""

    def test_names_are_stable(self) -> None:
        assert [k.value for k in RecordKind] == [
            "patient",
            "reading",
            "encounter",
            "encounter_addendum",
            "signed_prescription",
            "prescription_draft",
            "prescription_status",
        ]
        assert [s.value for s in ChangeStatus] == ["applied", "merged", "rejected"]
        assert {c.value for c in RejectCode} == {
            "schema_mismatch",
            "invalid_record",
            "signed_immutable",
            "not_in_scope",
            "stale_base",
            "bad_signature",
            "clock_skew",
        }


class TestChange:
    def test_accepts_upsert_and_delete(self) -> None:
        assert Change.model_validate(upsert()).fields == {"name": "Asha", "mobile": None}
        delete = Change.model_validate({"kind": "patient", "id": str(uuid7()), "op": "delete", "hlc": H1})
        assert (delete.fields, delete.field_hlcs) == ({}, {})

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"hlc": "yesterday"}, "not an HLC stamp"),
            ({"field_hlcs": {"name": H1, "mobile": "019ab4c27d10-2a-a"}}, "not an HLC stamp"),
            ({"field_hlcs": {"name": H1}}, "same keys"),
            ({"fields": {}, "field_hlcs": {}}, "at least one field"),
            ({"hlc": H1}, "newer than the change's hlc"),
            ({"fields": {"Name": "A"}, "field_hlcs": {"Name": H1}}, "snake_case"),
            ({"fields": {"deleted": "yes"}, "field_hlcs": {"deleted": H1}}, "true or false"),
            ({"op": "delete"}, "a delete carries no fields"),
            ({"kind": "audit_event"}, "Input should be 'patient'"),
            ({"op": "replace"}, "Input should be 'upsert' or 'delete'"),
            ({"base_version": -1}, "greater than or equal to 0"),
        ],
    )
    def test_refuses_inconsistent_changes(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError) as info:
            Change.model_validate(upsert(**overrides))
        assert message in error_text(info)

    def test_pulled_change_keeps_the_change_rules(self) -> None:
        with pytest.raises(ValidationError) as info:
            PulledChange.model_validate({**upsert(op="delete"), "seq": 1, "server_version": 2})
        assert "a delete carries no fields" in error_text(info)

    def test_is_immutable(self) -> None:
        change = Change.model_validate(upsert())
        with pytest.raises(ValidationError):
            change.hlc = H1  # type: ignore[misc]

    @given(
        st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda name: name != "deleted"),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=10),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                max_leaves=8,
            ),
            min_size=1,
            max_size=8,
        )
    )
    def test_json_round_trip_keeps_every_value(self, fields: dict[str, Any]) -> None:
        change = Change.model_validate(upsert(fields=fields, field_hlcs=dict.fromkeys(fields, H1)))
        again = Change.model_validate_json(change.model_dump_json())
        assert again == change
        assert again.fields == fields


class TestPushRequest:
    def test_accepts_a_full_batch_and_refuses_a_bigger_or_empty_one(self) -> None:
        one = upsert()
        assert len(PushRequest.model_validate(push([one] * MAX_PUSH_CHANGES)).changes) == MAX_PUSH_CHANGES
        for changes in ([one] * (MAX_PUSH_CHANGES + 1), []):
            with pytest.raises(ValidationError) as info:
                PushRequest.model_validate(push(changes))
            assert info.value.errors()[0]["loc"] == ("changes",)

    def test_refuses_version_zero(self) -> None:
        with pytest.raises(ValidationError) as info:
            PushRequest.model_validate({**push([upsert()]), "protocol_version": 0})
        assert info.value.errors()[0]["loc"] == ("protocol_version",)


class TestChangeResult:
    def base(self, **overrides: Any) -> dict[str, Any]:
        return {"kind": "patient", "id": str(uuid7()), **overrides}

    def test_accepts_applied_and_rejected(self) -> None:
        assert ChangeResult.model_validate(self.base(status="applied", server_version=1)).reason is None
        rejected = ChangeResult.model_validate(
            self.base(status="rejected", reason="clock_skew", message="This computer's clock is 1 d ahead")
        )
        assert rejected.reason is RejectCode.CLOCK_SKEW

    @pytest.mark.parametrize(
        "overrides",
        [
            {"status": "rejected", "message": "no reason given"},
            {"status": "rejected", "reason": "stale_base"},
            {"status": "merged", "server_version": 3, "reason": "stale_base", "message": "not rejected"},
            {"status": "applied"},
        ],
    )
    def test_reason_goes_with_rejection_and_version_with_acceptance(self, overrides: dict[str, Any]) -> None:
        with pytest.raises(ValidationError) as info:
            ChangeResult.model_validate(self.base(**overrides))
        assert "exactly when the change is rejected" in error_text(info) or "server_version" in error_text(info)


class TestPullResponse:
    def test_refuses_changes_out_of_feed_order(self) -> None:
        first = {**upsert(), "seq": 5, "server_version": 1}
        second = {**upsert(), "seq": 5, "server_version": 1}
        with pytest.raises(ValidationError) as info:
            PullResponse.model_validate(
                {"changes": [first, second], "next_cursor": "5", "has_more": False, "server_hlc": H1}
            )
        assert "strictly increasing seq" in error_text(info)

    def test_refuses_a_bad_server_clock(self) -> None:
        with pytest.raises(ValidationError) as info:
            PullResponse.model_validate({"changes": [], "next_cursor": "0", "has_more": False, "server_hlc": ""})
        assert info.value.errors()[0]["loc"] == ("server_hlc",)
