"""What the resizer remembers, how it learns it, and when a claim is queued."""

from __future__ import annotations

import grpc

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.workqueue import After
from csi_sidecars.resizer import names as n
from csi_sidecars.resizer.controller import combine, should_enqueue
from csi_sidecars.resizer.memory import EXPAND, MODIFY, Memory, watch_calls
from tests.unit.resizer.objects import pvc
from tests.unit.resizer.script import RpcError


def expand_req(size: int) -> csi_pb2.ControllerExpandVolumeRequest:
    return csi_pb2.ControllerExpandVolumeRequest(
        capacity_range=csi_pb2.CapacityRange(required_bytes=size)
    )


def test_answers_are_remembered_per_claim_and_forgotten() -> None:
    mem = Memory(hold=300)
    mem.answered("ns/a", EXPAND, expand_req(5), RpcError(grpc.StatusCode.FAILED_PRECONDITION))
    recall = mem.observe("ns/a", expand_infeasible=False, modify_infeasible=False, now=0)
    assert recall.in_use_error and recall.final_error
    mem.answered("ns/a", EXPAND, expand_req(5), None)
    recall = mem.observe("ns/a", expand_infeasible=False, modify_infeasible=False, now=0)
    assert not recall.in_use_error and recall.expand_error is None
    assert len(mem) == 0  # nothing worth keeping
    mem.answered("ns/a", EXPAND, expand_req(7), RpcError(grpc.StatusCode.UNIMPLEMENTED))
    assert (
        mem.observe(
            "ns/a", expand_infeasible=False, modify_infeasible=False, now=0
        ).expand_unimplemented
        == 7
    )
    mem.answered(
        "ns/b", MODIFY, csi_pb2.ControllerModifyVolumeRequest(), RpcError(grpc.StatusCode.ABORTED)
    )
    recall = mem.observe("ns/b", expand_infeasible=False, modify_infeasible=False, now=0)
    assert (
        recall.modify_answered and recall.modify_error is not None and not recall.modify_error.final
    )
    mem.forget("ns/a")
    mem.forget("ns/b")
    assert len(mem) == 0


def test_slow_set_follows_the_infeasible_status() -> None:
    mem = Memory(hold=100)
    first = mem.observe("k", expand_infeasible=True, modify_infeasible=False, now=1000)
    assert first.expand_slow == 100
    assert (
        mem.observe("k", expand_infeasible=True, modify_infeasible=False, now=1040).expand_slow
        == 60
    )
    # Once the hold is over one attempt goes through, and the clock starts again.
    assert (
        mem.observe("k", expand_infeasible=True, modify_infeasible=False, now=1100).expand_slow == 0
    )
    assert (
        mem.observe("k", expand_infeasible=True, modify_infeasible=False, now=1101).expand_slow
        == 99
    )
    assert (
        mem.observe("k", expand_infeasible=False, modify_infeasible=True, now=1200).modify_slow
        == 100
    )
    assert (
        mem.observe("k", expand_infeasible=False, modify_infeasible=False, now=1201).modify_slow
        == 0
    )
    assert len(mem) == 0


def test_watch_calls_reports_answers_also_inside_continuations() -> None:
    seen: list[tuple[str, object]] = []
    inner = a.Call(
        "controller", MODIFY, "req2", then=lambda _: a.done(), on_error=lambda e: a.retry()
    )
    outer = a.Call(
        "controller", EXPAND, "req1", then=lambda _: (inner,), on_error=lambda e: a.retry()
    )
    patch = a.Patch(resource=None, name="x", body={}, then=lambda _: (outer,))  # type: ignore[arg-type]
    (wrapped,) = watch_calls((patch,), lambda call, err: seen.append((call.method, err)))
    assert isinstance(wrapped, a.Patch) and wrapped.then is not None
    (call1,) = wrapped.then({})
    (call2,) = call1.then("reply")
    boom = RuntimeError("x")
    call2.on_error(boom)
    assert seen == [(EXPAND, None), (MODIFY, boom)]


def test_should_enqueue_filters() -> None:
    old = pvc("1Gi", "1Gi")
    yes = lambda _: True  # noqa: E731
    grown = pvc("2Gi", "1Gi")
    grown["metadata"]["resourceVersion"] = "11"
    assert should_enqueue(old, grown, recover=True, modify=False, has_pv=yes)
    lowered = pvc("500Mi", "1Gi")
    lowered["metadata"]["resourceVersion"] = "11"
    assert should_enqueue(old, lowered, recover=True, modify=False, has_pv=yes)
    assert not should_enqueue(old, lowered, recover=False, modify=False, has_pv=yes)
    labelled = pvc("1Gi", "1Gi")
    labelled["metadata"]["resourceVersion"] = "11"
    labelled["metadata"]["labels"] = {"x": "y"}
    old["status"]["modifyVolumeStatus"] = {"status": "Pending"}
    labelled["status"]["modifyVolumeStatus"] = {"status": "Pending"}
    assert not should_enqueue(old, labelled, recover=True, modify=True, has_pv=yes)
    assert should_enqueue(old, old, recover=True, modify=False, has_pv=yes)  # resync
    state = pvc("1Gi", "1Gi", state=n.NODE_RESIZE_PENDING)
    state["metadata"]["resourceVersion"] = "11"
    assert should_enqueue(old, state, recover=True, modify=False, has_pv=yes)
    classed = pvc("1Gi", "1Gi", vac="gold")
    classed["metadata"]["resourceVersion"] = "11"
    assert should_enqueue(old, classed, recover=True, modify=True, has_pv=yes)
    assert not should_enqueue(old, classed, recover=True, modify=True, has_pv=lambda _: False)
    assert not should_enqueue(old, classed, recover=True, modify=False, has_pv=yes)


def test_combine_results() -> None:
    assert combine(True, True) is True
    assert combine(True, False) is False and combine(After(3), False) is False
    result = combine(After(9), After(4))
    assert isinstance(result, After) and result.seconds == 4
    assert combine(None, After(2)) == After(2)


def test_each_decision_touches_only_its_own_slow_set() -> None:
    mem = Memory(hold=100)
    assert mem.observe("k", modify_infeasible=True, now=0).modify_slow == 100
    # The expansion decision's look at the claim (at the moment the hold ends) leaves the
    # modification's hold alone, so the modification's one retry still goes through.
    assert mem.observe("k", expand_infeasible=False, now=100).expand_slow == 0
    assert mem.observe("k", modify_infeasible=True, now=100).modify_slow == 0
