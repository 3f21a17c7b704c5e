"""Table tests of the expansion decision (the size x status matrix, then each better-than-Go row).

Each row feeds one claim and PV to :func:`decide_expansion`, walks the plan with a scripted
driver and checks the claim, the PV, the CSI calls and the events that result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.resizer import names as n
from csi_sidecars.resizer.errors import classify
from csi_sidecars.resizer.expand import ExpandSettings, claim_in_use, decide_expansion
from csi_sidecars.resizer.memory import Recall
from tests.unit.resizer.objects import DRIVER, pv, pvc
from tests.unit.resizer.script import RpcError, Walk

NOW = "2026-01-01T00:00:00Z"
G = 10**9


def driver(node_required: bool = True, error: BaseException | None = None, got: int | None = None):
    def answer(method: str, request: Any) -> Any:
        if error is not None:
            raise error
        want = request.capacity_range.required_bytes
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=want if got is None else got, node_expansion_required=node_required
        )

    return answer


def walk(
    claim: JsonDict,
    volume: JsonDict,
    *,
    settings: ExpandSettings | None = None,
    recall: Recall | None = None,
    answer: Any = None,
    pods: list[JsonDict] | None = None,
    secrets: dict[str, JsonDict] | None = None,
) -> Walk:
    w = Walk({"claim1": claim, "pv1": volume}, answer or driver(), pods or [], secrets or {})
    plan = decide_expansion(
        claim, volume, settings or ExpandSettings(DRIVER), recall or Recall(), NOW
    )
    return w.run(plan)


def final_error() -> Recall:
    return Recall(expand_error=classify(RpcError(grpc.StatusCode.INTERNAL)))


def err(code: grpc.StatusCode) -> RpcError:
    return RpcError(code, "something broke")


@dataclass
class Row:
    name: str
    claim: JsonDict
    volume: JsonDict
    state: str | None  # expected allocatedResourceStatuses[storage] (None: key absent)
    allocated: str | None
    called: bool
    recall: Recall = field(default_factory=Recall)
    controller: bool = True
    node_required: bool = True
    error: BaseException | None = None
    not_required_annotation: bool = False
    condition: str | None = None


ROWS = [
    Row("spec>pv, no status", pvc("2G", "1G"), pv("1G"), n.NODE_RESIZE_PENDING, "2G", True),
    Row(
        "spec>pv, controller infeasible: the lowered request is tried",
        pvc("5G", "3G", "10G", n.CONTROLLER_RESIZE_INFEASIBLE),
        pv("3G"),
        n.NODE_RESIZE_PENDING,
        "5G",
        True,
    ),
    Row(
        "spec>pv, in progress after a final error: the spec size",
        pvc("5G", "3G", "10G", n.CONTROLLER_RESIZE_IN_PROGRESS),
        pv("3G"),
        n.NODE_RESIZE_PENDING,
        "5G",
        True,
        recall=final_error(),
    ),
    Row(
        "spec>pv, final error then FailedPrecondition again",
        pvc("5G", "3G", "10G", n.CONTROLLER_RESIZE_IN_PROGRESS),
        pv("3G"),
        n.CONTROLLER_RESIZE_IN_PROGRESS,
        "5G",
        True,
        recall=final_error(),
        error=err(grpc.StatusCode.FAILED_PRECONDITION),
        condition=n.CONTROLLER_RESIZE_ERROR,
    ),
    Row(
        "spec>pv, final error then InvalidArgument",
        pvc("5G", "3G", "10G", n.CONTROLLER_RESIZE_IN_PROGRESS),
        pv("3G"),
        n.CONTROLLER_RESIZE_INFEASIBLE,
        "5G",
        True,
        recall=final_error(),
        error=err(grpc.StatusCode.INVALID_ARGUMENT),
        condition=n.CONTROLLER_RESIZE_ERROR,
    ),
    Row(
        "spec>pv, in progress after an uncertain error: keep the allocated size",
        pvc("5G", "3G", "10G", n.CONTROLLER_RESIZE_IN_PROGRESS),
        pv("3G"),
        n.NODE_RESIZE_PENDING,
        "10G",
        True,
    ),
    Row(
        "pv>=spec, node infeasible, node-only driver: the spec size",
        pvc("5G", "3G", "10G", n.NODE_RESIZE_INFEASIBLE),
        pv("10G"),
        n.NODE_RESIZE_PENDING,
        "5G",
        True,
        controller=False,
    ),
    Row(
        "pv>=spec, node pending: nothing to do",
        pvc("1G", "500M", "1G", n.NODE_RESIZE_PENDING),
        pv("1G"),
        n.NODE_RESIZE_PENDING,
        "1G",
        False,
    ),
    Row(
        "spec>pv, no node expansion needed: finished",
        pvc("2G", "1G"),
        pv("1G"),
        None,
        "2G",
        True,
        node_required=False,
        not_required_annotation=True,
    ),
    Row(
        "pv>=spec, node infeasible, controller driver: the allocated size again",
        pvc("2G", "1G", "2G", n.NODE_RESIZE_INFEASIBLE),
        pv("2G"),
        n.NODE_RESIZE_PENDING,
        "2G",
        True,
    ),
    Row(
        "spec>pv, node pending at the allocated size: wait for the node",
        pvc("10G", "1G", "3G", n.NODE_RESIZE_PENDING),
        pv("3G"),
        n.NODE_RESIZE_PENDING,
        "3G",
        False,
    ),
    Row(
        "spec>pv, node in progress at the allocated size: wait for the node",
        pvc("10G", "1G", "3G", n.NODE_RESIZE_IN_PROGRESS),
        pv("3G"),
        n.NODE_RESIZE_IN_PROGRESS,
        "3G",
        False,
    ),
    Row(
        "pv>=spec, controller infeasible: back to the allocated size",
        pvc("2G", "1G", "2G", n.CONTROLLER_RESIZE_INFEASIBLE),
        pv("2G"),
        n.NODE_RESIZE_PENDING,
        "2G",
        True,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_expand_and_recover_matrix(row: Row) -> None:
    settings = ExpandSettings(DRIVER, controller_expansion=row.controller)
    w = walk(
        row.claim,
        row.volume,
        settings=settings,
        recall=row.recall,
        answer=driver(row.node_required, row.error),
    )
    claim = w.objects["claim1"]
    status = claim["status"]
    assert (status.get("allocatedResourceStatuses") or {}).get("storage") == row.state
    assert (status.get("allocatedResources") or {}).get("storage") == row.allocated
    expanded = bool(w.calls("ControllerExpandVolume")) if row.controller else bool(w.of(a.Emit))
    assert expanded == row.called
    annotations = claim["metadata"].get("annotations") or {}
    assert (annotations.get(n.NODE_EXPANSION_NOT_REQUIRED) == "true") == row.not_required_annotation
    kinds = [c["type"] for c in status.get("conditions") or []]
    if row.condition is not None:
        assert row.condition in kinds
    if row.called and row.error is None:
        size = row.allocated
        assert w.objects["pv1"]["spec"]["capacity"]["storage"] in (size, _binary(size))
        # Go keeps "Resizing" next to FileSystemResizePending (keepOldResizeConditions).
        assert kinds == ([n.RESIZING, n.FS_RESIZE_PENDING] if row.node_required else [])
        assert isinstance(w.outcome, a.Done)
    if row.error is not None:
        assert isinstance(w.outcome, a.Retry)
        assert w.objects["pv1"] == row.volume


def _binary(size: str | None) -> str:
    from csi_sidecars.kube.quantity import format_binary_si, quantity_to_bytes

    return format_binary_si(quantity_to_bytes(size or "0"))


def test_request_carries_volume_capability_and_only_required_bytes() -> None:
    w = walk(pvc("2Gi", "1Gi"), pv("1Gi"), settings=ExpandSettings(DRIVER, True, True))
    (req,) = w.calls("ControllerExpandVolume")
    assert req.volume_id == "vol-1"
    assert req.capacity_range.required_bytes == 2 * 1024**3
    assert req.capacity_range.limit_bytes == 0
    assert req.volume_capability.mount.fs_type == "ext4"
    assert list(req.volume_capability.mount.mount_flags) == ["noatime"]
    assert (
        req.volume_capability.access_mode.mode
        == csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER
    )
    block = walk(pvc("2Gi", "1Gi"), pv("1Gi", block=True)).calls("ControllerExpandVolume")[0]
    assert block.volume_capability.HasField("block")


def test_success_events_and_pv_annotation() -> None:
    w = walk(pvc("2Gi", "1Gi"), pv("1Gi"))
    assert w.events() == [
        ("Normal", n.VOLUME_RESIZING, "External resizer is resizing volume pv1"),
        ("Normal", n.FS_RESIZE_REQUIRED, "Require file system resize of volume on node"),
    ]
    volume = w.objects["pv1"]
    assert volume["spec"]["capacity"]["storage"] == "2Gi"
    assert volume["metadata"]["annotations"] == {n.PRE_RESIZE_CAPACITY: "1Gi"}
    cond = w.objects["claim1"]["status"]["conditions"][1]
    assert cond == {
        "type": n.FS_RESIZE_PENDING,
        "status": "True",
        "lastTransitionTime": NOW,
        "message": n.FS_RESIZE_PENDING_MESSAGE,
    }
    finished = walk(pvc("2Gi", "1Gi"), pv("1Gi"), answer=driver(node_required=False))
    assert finished.events()[-1] == ("Normal", n.VOLUME_RESIZE_SUCCESS, "Resize volume succeeded")
    assert finished.objects["claim1"]["status"]["capacity"]["storage"] == "2Gi"
    assert "annotations" not in finished.objects["pv1"]["metadata"]


def test_in_progress_is_recorded_before_the_call_with_a_resource_version_check() -> None:
    plan = decide_expansion(pvc("2Gi", "1Gi"), pv("1Gi"), ExpandSettings(DRIVER), Recall(), NOW)
    (mark,) = plan
    assert isinstance(mark, a.Patch) and mark.subresource == "status"
    assert mark.body["metadata"]["resourceVersion"] == "10"
    assert mark.body["status"]["allocatedResourceStatuses"] == {
        "storage": "ControllerResizeInProgress"
    }
    assert mark.body["status"]["conditions"] == [
        {"type": n.RESIZING, "status": "True", "lastTransitionTime": NOW}
    ]


def test_pre_resize_annotation_removed_once_the_node_step_finished() -> None:
    claim = pvc("2Gi", "2Gi")
    volume = pv("2Gi", annotations={n.PRE_RESIZE_CAPACITY: "1Gi"})
    plan = decide_expansion(claim, volume, ExpandSettings(DRIVER), Recall(), NOW)
    assert isinstance(plan[0], a.Patch)
    assert plan[0].body == {"metadata": {"annotations": {n.PRE_RESIZE_CAPACITY: None}}}
    assert isinstance(plan[-1], a.Done)


@pytest.mark.parametrize(
    ("claim", "volume"),
    [
        (pvc("2Gi", "1Gi"), pv("1Gi", driver="other.csi")),
        (pvc("2Gi", "1Gi"), pv("1Gi", uid="someone-else")),
        (pvc("2Gi", "1Gi", phase="Pending"), pv("1Gi")),
        (pvc("1Gi", "1Gi"), pv("1Gi")),
    ],
    ids=["other driver", "claimRef of another claim", "not bound", "no larger request"],
)
def test_not_ours_or_nothing_to_do(claim: JsonDict, volume: JsonDict) -> None:
    w = walk(claim, volume)
    assert isinstance(w.outcome, a.Done) and not w.of(a.Patch) and not w.of(a.Call)


def test_missing_pv_is_retried() -> None:
    plan = decide_expansion(pvc(), None, ExpandSettings(DRIVER), Recall(), NOW)
    assert isinstance(plan[-1], a.Retry) and "not found" in plan[-1].reason


# -- better than Go --------------------------------------------------------------------------


@pytest.mark.parametrize("got", [0, 1 * 1024**3], ids=["capacity 0 (#226)", "less than requested"])
def test_short_capacity_reply_is_an_error_never_written_to_the_pv(got: int) -> None:
    claim, volume = pvc("2Gi", "1Gi"), pv("1Gi")
    w = walk(claim, volume, answer=driver(got=got))
    assert w.objects["pv1"] == volume  # Go writes capacity_bytes as it came
    assert isinstance(w.outcome, a.Retry)
    kind, reason, message = w.events()[-1]
    assert (kind, reason) == ("Warning", n.VOLUME_RESIZE_FAILED)
    assert f"capacity of {got} bytes" in message
    status = w.objects["claim1"]["status"]
    assert status["allocatedResourceStatuses"] == {"storage": n.CONTROLLER_RESIZE_IN_PROGRESS}
    assert status["capacity"] == {"storage": "1Gi"}
    assert not any(e[1] == n.VOLUME_RESIZE_SUCCESS for e in w.events())


def test_deadline_exceeded_keeps_in_progress_then_the_same_size_is_confirmed() -> None:
    claim, volume = pvc("2Gi", "1Gi"), pv("1Gi")
    timeout = RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    first = walk(claim, volume, answer=driver(error=timeout))
    assert isinstance(first.outcome, a.Retry)
    assert [e[1] for e in first.events()] == [n.VOLUME_RESIZING, n.VOLUME_RESIZE_FAILED]
    assert "context deadline exceeded" in first.events()[-1][2]
    after = first.objects["claim1"]
    assert after["status"]["allocatedResourceStatuses"] == {
        "storage": n.CONTROLLER_RESIZE_IN_PROGRESS
    }
    assert first.objects["pv1"] == volume
    # The retry (the user meanwhile asked for more) still asks for the size that timed out.
    after["spec"]["resources"]["requests"]["storage"] = "3Gi"
    recall = Recall(expand_error=classify(timeout))
    second = walk(after, volume, recall=recall)
    assert second.calls("ControllerExpandVolume")[0].capacity_range.required_bytes == 2 * 1024**3
    assert second.objects["pv1"]["spec"]["capacity"]["storage"] == "2Gi"


def test_unimplemented_is_final_for_that_size() -> None:
    claim, volume = pvc("2Gi", "1Gi"), pv("1Gi")
    w = walk(claim, volume, answer=driver(error=err(grpc.StatusCode.UNIMPLEMENTED)))
    assert isinstance(w.outcome, a.Done)
    assert n.CONTROLLER_RESIZE_ERROR in [
        c["type"] for c in w.objects["claim1"]["status"]["conditions"]
    ]
    recall = Recall(
        expand_error=classify(err(grpc.StatusCode.UNIMPLEMENTED)),
        expand_unimplemented=2 * 1024**3,
    )
    again = walk(w.objects["claim1"], volume, recall=recall)
    assert not again.of(a.Call) and not again.of(a.Patch)
    assert isinstance(again.outcome, a.Done)


def test_infeasible_waits_for_the_slow_retry_unless_the_request_changes() -> None:
    claim = pvc("10Gi", "1Gi", "10Gi", n.CONTROLLER_RESIZE_INFEASIBLE)
    w = walk(claim, pv("1Gi"), recall=Recall(expand_slow=120.0))
    assert w.done == [w.outcome] and isinstance(w.outcome, a.RetryAfter)
    assert w.outcome.seconds == 120.0
    lowered = pvc("3Gi", "1Gi", "10Gi", n.CONTROLLER_RESIZE_INFEASIBLE)
    w = walk(lowered, pv("1Gi"), recall=Recall(expand_slow=120.0))
    assert w.calls("ControllerExpandVolume")[0].capacity_range.required_bytes == 3 * 1024**3


def _pod(claim: str, phase: str = "Running", ephemeral: bool = False) -> JsonDict:
    vol: JsonDict = {"name": "data"}
    if ephemeral:
        vol["ephemeral"] = {"volumeClaimTemplate": {}}
    else:
        vol["persistentVolumeClaim"] = {"claimName": claim}
    return {"metadata": {"name": "app"}, "spec": {"volumes": [vol]}, "status": {"phase": phase}}


def test_offline_driver_waits_while_a_pod_uses_the_claim() -> None:
    in_use = Recall(expand_error=classify(err(grpc.StatusCode.FAILED_PRECONDITION)))
    w = walk(pvc(), pv(), recall=in_use, pods=[_pod("claim1")])
    assert not w.calls("ControllerExpandVolume") and isinstance(w.outcome, a.Retry)
    assert w.events()[-1] == (
        "Warning",
        n.VOLUME_RESIZE_FAILED,
        f"Unable to expand ns1/claim1 because CSI driver {DRIVER} only supports offline "
        "expansion and volume is currently in-use",
    )
    w = walk(pvc(), pv(), recall=in_use, pods=[_pod("claim1", "Succeeded"), _pod("other")])
    assert len(w.calls("ControllerExpandVolume")) == 1
    off = ExpandSettings(DRIVER, handle_in_use=False)
    w = walk(pvc(), pv(), recall=in_use, pods=[_pod("claim1")], settings=off)
    assert len(w.calls("ControllerExpandVolume")) == 1


def test_no_pod_lookup_without_an_in_use_answer() -> None:
    w = walk(pvc(), pv(), pods=[_pod("claim1")])
    assert not w.of(a.List) and len(w.calls("ControllerExpandVolume")) == 1


def test_generic_ephemeral_volume_counts_as_use() -> None:
    assert claim_in_use([_pod("", ephemeral=True)], "app-data")
    assert not claim_in_use([_pod("", ephemeral=True)], "app-other")


def test_controller_expand_secret_is_read_and_sent() -> None:
    import base64

    secret = {
        "metadata": {"name": "s", "namespace": "sec"},
        "data": {"k": base64.b64encode(b"s3cr3t-value").decode()},
    }
    w = walk(pvc(), pv(secret=("sec", "s")), secrets={"sec/s": secret})
    (req,) = w.calls("ControllerExpandVolume")
    assert dict(req.secrets) == {"k": "s3cr3t-value"}
    missing = walk(pvc(), pv(secret=("sec", "s")))
    assert not missing.of(a.Call) and isinstance(missing.outcome, a.Retry)
    assert 'secrets "s" not found' in missing.events()[-1][2]
    assert "s3cr3t" not in repr(missing.done) + repr(w.done)


def test_legacy_flow_writes_conditions_only() -> None:
    legacy = ExpandSettings(DRIVER, recover=False)
    w = walk(pvc("2Gi", "1Gi"), pv("1Gi"), settings=legacy, answer=driver(node_required=False))
    status = w.objects["claim1"]["status"]
    assert "allocatedResources" not in status and "allocatedResourceStatuses" not in status
    assert status["capacity"] == {"storage": "2Gi"} and status.get("conditions") == []
    assert w.events()[-1][1] == n.VOLUME_RESIZE_SUCCESS
    failed = walk(
        pvc("2Gi", "1Gi"),
        pv("1Gi"),
        settings=legacy,
        answer=driver(error=err(grpc.StatusCode.INTERNAL)),
    )
    assert [c["type"] for c in failed.objects["claim1"]["status"]["conditions"]] == [n.RESIZING]
