"""Table tests of the modification decision: classes, statuses, errors, rollback, serialising."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.resizer import names as n
from csi_sidecars.resizer.errors import classify
from csi_sidecars.resizer.memory import Recall
from csi_sidecars.resizer.modify import ModifySettings, decide_modification, infeasible_target
from tests.unit.resizer.objects import DRIVER, pv, pvc, vac
from tests.unit.resizer.script import RpcError, Walk, grant

NOW = "2026-01-01T00:00:00Z"
CLASSES = {"gold": vac("gold", iops="3000"), "silver": vac("silver", iops="1000")}
ANSWERED = Recall(modify_answered=True)


def walk(
    claim: JsonDict,
    *,
    recall: Recall = ANSWERED,
    error: BaseException | None = None,
    settings: ModifySettings | None = None,
    classes: dict[str, JsonDict] | None = None,
) -> Walk:
    def answer(method: str, request: Any) -> Any:
        if error is not None:
            raise error
        return grant(method, request)

    w = Walk({"claim1": claim, "pv1": pv()}, answer)
    known = CLASSES if classes is None else classes
    plan = decide_modification(
        claim, pv(), known.get, settings or ModifySettings(DRIVER), recall, NOW
    )
    return w.run(plan)


def status(w: Walk) -> JsonDict:
    return dict(w.objects["claim1"]["status"])


def test_new_class_is_marked_in_progress_then_applied() -> None:
    claim = pvc("1Gi", "1Gi", vac="gold")
    plan = decide_modification(claim, pv(), CLASSES.get, ModifySettings(DRIVER), ANSWERED, NOW)
    (mark,) = plan
    assert isinstance(mark, a.Patch) and mark.subresource == "status"
    assert mark.body["metadata"]["resourceVersion"] == "10"
    assert mark.body["status"]["modifyVolumeStatus"] == {
        "status": "InProgress",
        "targetVolumeAttributesClassName": "gold",
    }
    assert mark.body["status"]["conditions"] == [
        {
            "type": n.MODIFYING_VOLUME,
            "status": "True",
            "lastProbeTime": NOW,
            "message": 'Modifying volume to "gold" is in progress.',
            "lastTransitionTime": NOW,
        }
    ]
    w = walk(claim)
    (req,) = w.calls("ControllerModifyVolume")
    assert req.volume_id == "vol-1" and dict(req.mutable_parameters) == {"iops": "3000"}
    st = status(w)
    assert st["currentVolumeAttributesClassName"] == "gold"
    assert "modifyVolumeStatus" not in st and st.get("conditions") == []
    assert w.objects["pv1"]["spec"]["volumeAttributesClassName"] == "gold"
    assert w.events() == [
        ("Normal", n.VOLUME_MODIFY, "external resizer is modifying volume claim1 with vac gold"),
        (
            "Normal",
            n.VOLUME_MODIFY_SUCCESS,
            "external resizer modified volume claim1 with vac gold successfully",
        ),
    ]
    assert isinstance(w.outcome, a.Done)


def test_extra_modify_metadata() -> None:
    w = walk(pvc("1Gi", "1Gi", vac="gold"), settings=ModifySettings(DRIVER, True))
    assert dict(w.calls("ControllerModifyVolume")[0].mutable_parameters) == {
        "iops": "3000",
        n.PVC_NAME_KEY: "claim1",
        n.PVC_NAMESPACE_KEY: "ns1",
        n.PV_NAME_KEY: "pv1",
    }


def test_missing_class_is_pending_with_an_event() -> None:
    w = walk(pvc("1Gi", "1Gi", vac="bronze"))
    assert status(w)["modifyVolumeStatus"] == {"status": "Pending"}
    assert w.events() == [("Warning", n.VOLUME_MODIFY_FAILED, 'VAC "bronze" does not exist.')]
    assert not w.of(a.Call) and isinstance(w.outcome, a.Done)


@pytest.mark.parametrize(
    ("code", "state", "message"),
    [
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Infeasible",
            'Modifying volume to "gold" failed. Waiting for retry.',
        ),
        (
            grpc.StatusCode.INTERNAL,
            "InProgress",
            'Modifying volume to "gold" failed. Waiting for retry.',
        ),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "InProgress",
            'Modifying volume to "gold" is still in progress.',
        ),
    ],
)
def test_errors_set_status_and_both_conditions(
    code: grpc.StatusCode, state: str, message: str
) -> None:
    w = walk(pvc("1Gi", "1Gi", vac="gold"), error=RpcError(code, "nope"))
    st = status(w)
    assert st["modifyVolumeStatus"] == {"status": state, "targetVolumeAttributesClassName": "gold"}
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds[n.MODIFYING_VOLUME]["message"] == message
    error = conds[n.MODIFY_VOLUME_ERROR]
    assert error["message"] == "nope" and error["reason"] == classify(RpcError(code)).code_name
    assert isinstance(w.outcome, a.Retry)
    kind, reason, text = w.events()[-1]
    assert (kind, reason) == ("Warning", n.VOLUME_MODIFY_FAILED)
    assert text.startswith("rpc error: code = ")
    assert text.endswith(". Still modifying to VAC gold") == (
        code == grpc.StatusCode.DEADLINE_EXCEEDED
    )
    assert "currentVolumeAttributesClassName" not in st


def test_infeasible_waits_slowly_then_rollback_cancels() -> None:
    infeasible = pvc(
        "1Gi",
        "1Gi",
        vac="gold",
        current_vac="silver",
        modify={"status": "Infeasible", "targetVolumeAttributesClassName": "gold"},
        conditions=[{"type": n.MODIFYING_VOLUME, "status": "True"}],
    )
    assert infeasible_target(infeasible)
    w = walk(infeasible, recall=Recall(modify_answered=True, modify_slow=60.0))
    assert isinstance(w.outcome, a.RetryAfter) and not w.of(a.Patch)
    # Roll back to the current class: applied at once, the class is not infeasible any more.
    back = pvc(
        "1Gi",
        "1Gi",
        vac="silver",
        current_vac="silver",
        modify={"status": "Infeasible", "targetVolumeAttributesClassName": "gold"},
    )
    assert not infeasible_target(back)
    w = walk(back)
    assert dict(w.calls("ControllerModifyVolume")[0].mutable_parameters) == {"iops": "1000"}
    assert status(w)["currentVolumeAttributesClassName"] == "silver"
    assert "modifyVolumeStatus" not in status(w)
    # Roll back to no class: the attempt is cancelled.
    none = pvc(
        "1Gi",
        "1Gi",
        modify={"status": "Infeasible", "targetVolumeAttributesClassName": "gold"},
        conditions=[{"type": n.MODIFYING_VOLUME, "status": "True"}, {"type": "Other"}],
    )
    w = walk(none)
    assert w.events() == [("Normal", n.VOLUME_MODIFY_CANCELLED, "Cancelled modify.")]
    assert [c["type"] for c in status(w)["conditions"]] == ["Other"]
    assert not w.of(a.Call)


def test_in_progress_uncertain_target_is_finished_before_a_new_class() -> None:
    timed_out = classify(RpcError(grpc.StatusCode.DEADLINE_EXCEEDED))
    claim = pvc(
        "1Gi",
        "1Gi",
        vac="silver",
        modify={"status": "InProgress", "targetVolumeAttributesClassName": "gold"},
    )
    for recall in (Recall(), Recall(modify_error=timed_out, modify_answered=True)):
        w = walk(claim, recall=recall)
        assert dict(w.calls("ControllerModifyVolume")[0].mutable_parameters) == {"iops": "3000"}
        assert status(w)["currentVolumeAttributesClassName"] == "gold"
    # After a final error the user may roll forward to the new class.
    final = Recall(modify_error=classify(RpcError(grpc.StatusCode.INTERNAL)), modify_answered=True)
    w = walk(claim, recall=final)
    assert dict(w.calls("ControllerModifyVolume")[0].mutable_parameters) == {"iops": "1000"}


def test_unimplemented_is_final_for_those_parameters() -> None:
    claim = pvc("1Gi", "1Gi", vac="gold")
    w = walk(claim, error=RpcError(grpc.StatusCode.UNIMPLEMENTED))
    assert isinstance(w.outcome, a.Done)
    recall = Recall(
        modify_error=classify(RpcError(grpc.StatusCode.UNIMPLEMENTED)),
        modify_answered=True,
        modify_unimplemented=(("iops", "3000"),),
    )
    again = walk(w.objects["claim1"], recall=recall)
    assert not again.of(a.Call) and isinstance(again.outcome, a.Done)


@pytest.mark.parametrize(
    "claim",
    [
        pvc("1Gi", "1Gi", vac="gold", current_vac="gold"),
        pvc("1Gi", "1Gi", vac="gold", phase="Pending"),
        pvc("1Gi", "1Gi"),
    ],
    ids=["already current", "not bound", "no class"],
)
def test_nothing_to_do(claim: JsonDict) -> None:
    w = walk(claim)
    assert isinstance(w.outcome, a.Done) and not w.of(a.Call) and not w.of(a.Patch)


def test_other_driver_is_skipped() -> None:
    claim = pvc("1Gi", "1Gi", vac="gold")
    plan = decide_modification(
        claim, pv(driver="x.csi"), CLASSES.get, ModifySettings(DRIVER), ANSWERED, NOW
    )
    assert isinstance(plan[-1], a.Done) and len(plan) == 1
