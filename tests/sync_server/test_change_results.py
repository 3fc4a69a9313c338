"""The bulk answers of a push are the results ``model_copy`` would give."""

from __future__ import annotations

from shared.ids import uuid7
from shared.sync.protocol import ChangeResult, ChangeStatus, PushResponse, RecordKind
from sync_server.services.change_results import same_result_for


def test_same_result_for_equals_model_copy_json_included() -> None:
    template = ChangeResult(kind=RecordKind.READING, id=uuid7(), status=ChangeStatus.APPLIED, server_version=1)
    ids = [uuid7() for _ in range(3)]
    fast = same_result_for(template, ids)
    slow = [template.model_copy(update={"id": i}) for i in ids]
    assert fast == slow
    assert [r.model_dump_json() for r in fast] == [r.model_dump_json() for r in slow]
    assert [r.model_fields_set for r in fast] == [r.model_fields_set for r in slow]
    fast[0].message = None  # a model of its own: nothing shared with the template or the others
    assert fast[0].__dict__ is not fast[1].__dict__ and template.id not in {r.id for r in fast}
    response = PushResponse(batch_id=uuid7(), results=fast, server_hlc="00000000000a-0000-srv")
    assert PushResponse.model_validate_json(response.model_dump_json()) == response
