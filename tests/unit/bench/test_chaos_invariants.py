"""The chaos harness's invariants on made-up end states: each one holds, and each one breaks."""

from __future__ import annotations

from typing import Any

import pytest

from bench.chaos import invariants as inv
from bench.chaos.model import POD, PVC, SNAPSHOT, Process, Tracked, World
from csi_sidecars.playground.driver.requestlog import LoggedCall

DRIVER = "hostpath.csi.k8s.io"
SINCE = "2025-01-01T00:01:00Z"


def pvc(name: str, uid: str, phase: str = "Bound", pv: str = "", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "uid": uid},
        "spec": {"volumeName": pv} if pv else {},
        "status": {"phase": phase, **status},
    }


def pv(name: str, handle: str, claim_uid: str = "", phase: str = "Bound") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"csi": {"driver": DRIVER, "volumeHandle": handle}, "claimRef": {"uid": claim_uid}},
        "status": {"phase": phase},
    }


def pod(name: str, claim: str, node: str = "node-1") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "volumes": [{"persistentVolumeClaim": {"claimName": claim}}]},
    }


def va(pv_name: str, node: str = "node-1", attached: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": f"va-{pv_name}"},
        "spec": {"attacher": DRIVER, "nodeName": node, "source": {"persistentVolumeName": pv_name}},
        "status": {"attached": attached},
    }


def event(
    uid: str, when: str, reason: str = "ProvisioningFailed", message: str = "driver said no"
) -> dict[str, Any]:
    return {
        "involvedObject": {"uid": uid},
        "reason": reason,
        "message": message,
        "lastTimestamp": when,
        "type": "Warning",
    }


def call(
    method: str, start: float, end: float | None, code: str | None = "OK", **fields: str
) -> LoggedCall:
    return LoggedCall(f"1-{start}", method, start, dict(fields), end, code)


def healthy_world() -> tuple[World, list[Tracked]]:
    world = World(
        driver=DRIVER,
        pvcs=[pvc("c1", "u1", pv="pv1")],
        pods=[pod("p1", "c1")],
        pvs=[pv("pv1", "vol1", "u1")],
        vas=[va("pv1")],
        volumes={"vol1": "pvc-u1"},
        publications={("vol1", "node-1")},
        processes=[Process("chaos-provisioner-0", "provisioner", "ours", True, True)],
    )
    ledger = [
        Tracked(PVC, "ns", "c1", "u1", want={"bound": True}),
        Tracked(POD, "ns", "p1", "uid-p1", want={"attached": True}, claims=["c1"]),
        Tracked(PVC, "ns", "gone", "u2", deleted_at=10.0, note="early-delete"),
    ]
    return world, ledger


def test_a_healthy_world_holds_everything() -> None:
    world, ledger = healthy_world()
    results = inv.check_all(
        world, ledger, ["provision", "attach"], since=SINCE, grace=1.0, log_files=3
    )
    assert all(r.held for r in results.values()), {k: r for k, r in results.items() if not r.held}
    assert "no-leaked-snapshots" not in results
    assert "attachments-match" in results


def test_snapshot_invariants_only_with_snapshots() -> None:
    world, ledger = healthy_world()
    results = inv.check_all(world, ledger, ["snapshot"], since=SINCE, grace=1.0, log_files=0)
    assert {"no-leaked-snapshots", "no-lost-snapshots"} <= set(results)
    assert "attachments-match" not in results


def test_a_volume_without_pv_is_a_leak_named_after_its_claim() -> None:
    world, ledger = healthy_world()
    world.volumes["vol2"] = "pvc-u2"
    result = inv.no_leaked_volumes(world, ledger)
    assert not result.held and result.violations == 1
    assert (
        "vol2" in result.examples[0] and "pvc ns/gone (deleted, early-delete)" in result.examples[0]
    )


def test_two_pvs_for_one_volume_break_exactly_one() -> None:
    world, ledger = healthy_world()
    world.pvs.append(pv("pv-dup", "vol1", "u9"))
    assert inv.no_leaked_volumes(world, ledger).violations == 1


def test_a_pv_left_by_its_deleted_claim_leaks_its_volume() -> None:
    world, ledger = healthy_world()
    world.pvcs.clear()
    world.pvs[0]["status"]["phase"] = "Released"
    result = inv.no_leaked_volumes(world, ledger)
    assert result.violations == 1
    assert "its PV pv1 outlived its claim (Released)" in result.examples[0]
    world.pvs[0]["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert inv.no_leaked_volumes(world, ledger).held


def test_a_bound_pv_without_volume_is_lost() -> None:
    world, _ = healthy_world()
    world.pvs.append(pv("pv2", "vol-missing", "u3"))
    world.pvs.append(pv("pv3", "vol-released", "u4", phase="Released"))
    result = inv.no_lost_volumes(world)
    assert result.violations == 1 and "pv2" in result.examples[0]


def test_snapshot_leak_and_loss() -> None:
    world, _ = healthy_world()
    content = {
        "metadata": {"name": "snapcontent-1"},
        "spec": {"driver": DRIVER, "volumeSnapshotRef": {"uid": "s1"}},
        "status": {"snapshotHandle": "snap-1", "readyToUse": True},
    }
    world.contents = [content]
    world.snapshots = [{"metadata": {"namespace": "ns", "name": "s1", "uid": "s1"}}]
    world.driver_snapshots = {"snap-1": "snapshot-s1", "snap-2": "snapshot-s2"}
    ledger = [Tracked(SNAPSHOT, "ns", "s2", "s2", deleted_at=5.0, note="snapshot-early")]
    leaked = inv.no_leaked_snapshots(world, ledger)
    assert leaked.violations == 1 and "snapshot-early" in leaked.examples[0]
    assert inv.no_lost_snapshots(world).held
    # The VolumeSnapshot gone, its content left behind: the snapshot is leaked too.
    world.snapshots = []
    orphan = inv.no_leaked_snapshots(world, ledger)
    assert orphan.violations == 2
    assert "its content snapcontent-1 outlived its snapshot" in orphan.examples[0]
    world.driver_snapshots = {}
    assert inv.no_lost_snapshots(world).violations == 1


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (lambda w, led: w.pvcs.__setitem__(0, pvc("c1", "u1", phase="Pending")), "phase Pending"),
        (lambda w, led: w.vas.__setitem__(0, va("pv1", attached=False)), "not attached"),
        (lambda w, led: w.pods.clear(), "gone"),
        (lambda w, led: led[0].want.__setitem__("size", 2 << 20), "capacity"),
        (lambda w, led: led[0].want.__setitem__("vac", "gold"), "volumeAttributesClass"),
        (lambda w, led: w.pvcs.append(pvc("gone", "u2")), "still exists"),
        (lambda w, led: w.pvs.append(pv("pv-old", "vol1", "u2", "Released")), "PV pv-old remains"),
    ],
)
def test_expected_states_break(change: Any, expect: str) -> None:
    world, ledger = healthy_world()
    change(world, ledger)
    result = inv.expected_states(world, ledger, SINCE)
    assert not result.held
    assert expect in result.examples[0]


def test_an_unreached_state_with_an_error_the_user_sees_is_not_a_violation() -> None:
    world, ledger = healthy_world()
    world.pvcs[0] = pvc("c1", "u1", phase="Pending", pv="pv1")
    deadline = "rpc error: code = DeadlineExceeded desc = injected fault"
    # An echo of a fault of the chaos window, from before the settle window: not shown now.
    world.events = [event("u1", "2025-01-01T00:00:10Z", message=deadline)]
    assert not inv.expected_states(world, ledger, SINCE).held
    # The same error repeated during the settle window: the sidecar still reports it.
    world.events.append(event("u1", "2025-01-01T00:02:00Z", message=deadline))
    result = inv.expected_states(world, ledger, SINCE)
    assert result.held and "1 not reached" in result.note
    assert (
        result.examples[0].startswith("visible error:")
        and "DeadlineExceeded" in (result.examples[0])
    )
    # An error of another kind is shown whenever it came, as long as it is the latest.
    world.events = [
        event("u1", "2025-01-01T00:00:10Z", message=deadline),
        event("u1", "2025-01-01T00:00:20Z", message="restoring from a snapshot is not supported"),
    ]
    assert inv.expected_states(world, ledger, SINCE).held
    world.events.reverse()
    world.events[0]["lastTimestamp"], world.events[1]["lastTimestamp"] = (
        "2025-01-01T00:00:10Z",
        "2025-01-01T00:00:20Z",
    )
    assert not inv.expected_states(world, ledger, SINCE).held


def test_a_pod_waiting_for_a_failing_claim_shows_the_claims_error() -> None:
    world, ledger = healthy_world()
    world.pvcs[0] = pvc("c1", "u1", phase="Pending")
    world.pods[0]["spec"].pop("nodeName")
    assert inv.expected_states(world, ledger, SINCE).violations == 2
    world.events = [event("u1", "2025-01-01T00:02:00Z")]
    result = inv.expected_states(world, ledger, SINCE)
    assert result.held and "2 not reached" in result.note
    assert any("claim c1 shows event ProvisioningFailed" in e for e in result.examples)


def test_reached_size_and_class() -> None:
    world, ledger = healthy_world()
    world.pvcs[0] = pvc(
        "c1",
        "u1",
        pv="pv1",
        capacity={"storage": "3Mi"},
        currentVolumeAttributesClassName="gold",
    )
    ledger[0].want.update(size=3 << 20, vac="gold")
    assert inv.expected_states(world, ledger, SINCE).held


def test_objects_deleting_are_stuck() -> None:
    world, _ = healthy_world()
    world.pvs[0]["metadata"].update(
        deletionTimestamp="2025-01-01T00:00:00Z", finalizers=["kubernetes.io/pv-protection"]
    )
    result = inv.nothing_stuck(world)
    assert result.violations == 1 and "pv-protection" in result.examples[0]


def test_create_after_delete() -> None:
    ledger = [
        Tracked(PVC, "ns", "a", "ua", deleted_at=100.0),
        Tracked(PVC, "ns", "b", "ub", deleted_at=100.0),
        Tracked(PVC, "ns", "c", "uc", deleted_at=100.0),
        Tracked(SNAPSHOT, "ns", "s", "us", deleted_at=50.0),
    ]
    calls = [
        call("CreateVolume", 99.0, 99.5, name="pvc-ua"),  # before: fine ...
        call("CreateVolume", 120.0, 120.1, name="pvc-ua"),  # ... and so is its clean-up
        call("CreateVolume", 100.5, 100.6, name="pvc-ub"),  # within the grace
        call("CreateVolume", 103.0, 103.1, name="pvc-uc"),  # first sent 3 s after the delete
        call("CreateSnapshot", 60.0, None, None, name="snapshot-us"),  # even unfinished
    ]
    result = inv.no_create_after_delete(calls, ledger, grace=1.0)
    assert result.violations == 2
    assert "CreateSnapshot snapshot-us" in result.examples[0]
    assert "pvc ns/c" in result.examples[1] and "3.0s" in result.examples[1]
    assert "1 within" in result.note


def test_duplicate_operations_are_overlapping_finished_identical_calls() -> None:
    calls = [
        call("CreateVolume", 1.0, 5.0, name="pvc-x"),
        call("CreateVolume", 2.0, 3.0, "DEADLINE_EXCEEDED", name="pvc-x"),  # overlaps
        call("CreateVolume", 6.0, 7.0, name="pvc-x"),  # after: a retry, fine
        call("CreateVolume", 1.5, 9.0, "CANCELLED", name="pvc-x"),  # cut short: not counted
        call("ControllerPublishVolume", 1.0, 5.0, volume_id="v", node_id="n1"),
        call("ControllerPublishVolume", 2.0, 3.0, volume_id="v", node_id="n2"),  # other node
        call("Probe", 1.0, 2.0),
        call("Probe", 1.0, 2.0),
    ]
    result = inv.no_duplicate_operations(calls)
    assert result.violations == 1 and "CreateVolume pvc-x" in result.examples[0]
    assert result.checked == 5


def test_attachments_must_match_pods_and_driver() -> None:
    world, _ = healthy_world()
    assert inv.attachments_match(world).held
    world.publications.add(("vol9", "node-2"))
    world.vas.append(va("pv-orphan", "node-2", attached=False))
    result = inv.attachments_match(world)
    assert result.violations == 2
    assert any("vol9" in e for e in result.examples)
    assert any("no pod uses it" in e for e in result.examples)
    world.publications.discard(("vol1", "node-1"))
    assert any("driver disagrees" in e for e in inv.attachments_match(world).examples)


def test_secrets_and_processes() -> None:
    world, _ = healthy_world()
    world.secret_hits = {"/x/provisioner.log": 2}
    assert inv.no_secrets_in_logs(world, 5).examples == ["/x/provisioner.log: 2 occurrence(s)"]
    world.processes.append(Process("chaos-attacher-1", "attacher", "go", False, False, "exit 1"))
    result = inv.processes_healthy(world)
    assert result.violations == 1 and "not running - exit 1" in result.examples[0]
