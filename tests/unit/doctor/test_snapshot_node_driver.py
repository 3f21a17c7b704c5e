"""The VolumeSnapshot, Node and driver checkers, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.doctor.driver import check_driver, drivers_in_use
from csi_sidecars.doctor.node import check_node
from csi_sidecars.doctor.report import Severity
from csi_sidecars.doctor.volumesnapshot import check_volume_snapshot
from tests.unit.doctor import objs
from tests.unit.doctor.objs import DRIVER, NS, Case, check_case, healthy_base, snapshot

CONTROLLER_LEASE = objs.lease("snapshot-controller-leader")
SNAPSHOTTER_LEASE = objs.lease("external-snapshotter-leader-hostpath-csi-k8s-io")
CONTENT_FIN = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
BOUND_FIN = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"


def vs(
    ready: bool = False,
    content: str = "",
    klass: str | None = "csi-snap",
    age: float = 600,
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": "data"}}
    if klass is not None:
        spec["volumeSnapshotClassName"] = klass
    body: dict[str, Any] = {"readyToUse": ready, **status}
    if content:
        body["boundVolumeSnapshotContentName"] = content
    return {
        "metadata": {
            "name": "snap",
            "namespace": NS,
            "uid": "uid-snap",
            "creationTimestamp": objs.stamp(age),
        },
        "spec": spec,
        "status": body,
    }


def vsc(
    name: str = "snapcontent-1", policy: str = "Delete", handle: str = "", **status: Any
) -> dict[str, Any]:
    body: dict[str, Any] = dict(status)
    if handle:
        body["snapshotHandle"] = handle
    return {
        "metadata": {"name": name, "creationTimestamp": objs.stamp(500)},
        "spec": {"driver": DRIVER, "deletionPolicy": policy, "source": {"volumeHandle": "h"}},
        "status": body,
    }


def vsclass(name: str = "csi-snap", default: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"snapshot.storage.kubernetes.io/is-default-class": "true"}
    return {"metadata": meta, "driver": DRIVER, "deletionPolicy": "Delete"}


def snap_base(**extra: Any) -> dict[str, Any]:
    items = healthy_base(
        pvcs=[objs.pvc(phase="Bound", volumeName="pvc-1")],
        pvs=[objs.pv()],
        snapshot_classes=[vsclass()],
        leases=[CONTROLLER_LEASE, SNAPSHOTTER_LEASE],
    )
    items.update(extra)
    return items


VS_CASES = [
    Case(
        "ready",
        lambda: snapshot(**snap_base(snapshots=[vs(ready=True)])),
        "ReadyToUse",
        Severity.OK,
    ),
    Case(
        "CRDs not installed",
        lambda: snapshot(
            **healthy_base(),
            unavailable={
                k: "not installed: the API server does not serve snapshot.storage.k8s.io/v1"
                for k in ("VolumeSnapshot", "VolumeSnapshotContent", "VolumeSnapshotClass")
            },
        ),
        "SnapshotCRDsMissing",
        says=["not installed"],
    ),
    Case(
        "error on the snapshot",
        lambda: snapshot(**snap_base(snapshots=[vs(error={"message": "quota exceeded"})])),
        "SnapshotFailed",
        says=["quota exceeded"],
    ),
    Case(
        "error on the content",
        lambda: snapshot(
            **snap_base(
                snapshots=[vs(content="snapcontent-1")],
                snapshot_contents=[vsc(error={"message": "backend down"})],
            )
        ),
        "SnapshotFailed",
        says=["backend down"],
    ),
    Case(
        "class missing",
        lambda: snapshot(**snap_base(snapshots=[vs(klass="gold")])),
        "SnapshotClassNotFound",
        says=['"gold"'],
    ),
    Case(
        "no class and no default",
        lambda: snapshot(**snap_base(snapshots=[vs(klass=None)])),
        "NoDefaultSnapshotClass",
        says=["no default class"],
    ),
    Case(
        "source claim missing",
        lambda: snapshot(**snap_base(snapshots=[vs()], pvcs=[])),
        "SourceClaimNotFound",
    ),
    Case(
        "source claim Pending",
        lambda: snapshot(**snap_base(snapshots=[vs()], pvcs=[objs.pvc()])),
        "SourceClaimNotBound",
    ),
    Case(
        "no snapshot-controller",
        lambda: snapshot(**snap_base(snapshots=[vs()], leases=[SNAPSHOTTER_LEASE])),
        "NoSnapshotController",
        says=["no VolumeSnapshotContent"],
    ),
    Case(
        "snapshot-controller Lease stale",
        lambda: snapshot(
            **snap_base(
                snapshots=[vs()], leases=[objs.lease("snapshot-controller-leader", ago=400)]
            )
        ),
        "SnapshotControllerLeaseStale",
    ),
    Case(
        "no snapshotter for the content",
        lambda: snapshot(
            **snap_base(
                snapshots=[vs(content="snapcontent-1")],
                snapshot_contents=[vsc()],
                leases=[CONTROLLER_LEASE],
            )
        ),
        "NoSnapshotter",
        says=["csi-snapshotter", DRIVER],
    ),
    Case(
        "in progress",
        lambda: snapshot(
            **snap_base(
                snapshots=[vs(content="snapcontent-1")], snapshot_contents=[vsc(handle="snap-1")]
            )
        ),
        "SnapshotInProgress",
        Severity.WARNING,
    ),
    Case(
        "terminating: claim restoring from it",
        lambda: snapshot(
            **snap_base(
                snapshots=[
                    objs.deleting(
                        vs(ready=True),
                        finalizers=[
                            "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
                        ],
                    )
                ],
                pvcs=[
                    objs.pvc(
                        name="restore",
                        dataSource={
                            "kind": "VolumeSnapshot",
                            "name": "snap",
                            "apiGroup": "snapshot.storage.k8s.io",
                        },
                    )
                ],
            )
        ),
        "SnapshotInUse",
        says=["restore"],
    ),
    Case(
        "terminating: content waits for the snapshotter",
        lambda: snapshot(
            **snap_base(
                snapshots=[
                    objs.deleting(vs(ready=True, content="snapcontent-1"), finalizers=[BOUND_FIN])
                ],
                snapshot_contents=[objs.deleting(vsc(handle="s"), finalizers=[CONTENT_FIN])],
                leases=[CONTROLLER_LEASE],
            )
        ),
        "NoSnapshotter",
        says=[CONTENT_FIN],
    ),
    Case(
        "terminating: DeleteSnapshot fails",
        lambda: snapshot(
            **snap_base(
                snapshots=[
                    objs.deleting(vs(ready=True, content="snapcontent-1"), finalizers=[BOUND_FIN])
                ],
                snapshot_contents=[
                    objs.deleting(
                        vsc(handle="s", error={"message": "busy"}), finalizers=[CONTENT_FIN]
                    )
                ],
            )
        ),
        "SnapshotDeleteFailed",
        says=["busy"],
    ),
]

NODE_CASES = [
    Case("healthy", lambda: snapshot(**healthy_base()), "Healthy", Severity.OK),
    Case(
        "not ready",
        lambda: snapshot(**healthy_base(nodes=[objs.node(ready=False)])),
        "NodeNotReady",
        says=["Kubelet stopped posting"],
    ),
    Case("no CSINode", lambda: snapshot(**healthy_base(csi_nodes=[])), "CSINodeMissing"),
    Case(
        "topology labels missing",
        lambda: snapshot(**healthy_base(nodes=[objs.node(labels={})])),
        "TopologyLabelsMissing",
        says=["topology.hostpath.csi/node"],
    ),
    Case(
        "failing attachments",
        lambda: snapshot(
            **healthy_base(volume_attachments=[objs.va(attachError={"message": "boom"})])
        ),
        "AttachmentsFailing",
        says=["csi-abc"],
    ),
]

DRIVER_CASES = [
    Case("healthy", lambda: snapshot(**healthy_base()), "Healthy", Severity.OK),
    Case(
        "not installed",
        lambda: snapshot(
            **healthy_base(csi_drivers=[], csi_nodes=[objs.csinode(drivers=[])], leases=[])
        ),
        "DriverNotInstalled",
        says=["fast"],
    ),
    Case(
        "on no node",
        lambda: snapshot(**healthy_base(csi_nodes=[objs.csinode(drivers=[])])),
        "DriverNotOnAnyNode",
    ),
    Case(
        "provisioner Lease stale",
        lambda: snapshot(**healthy_base(leases=[objs.provisioner_lease(ago=100)])),
        "ProvisionerLeaseStale",
    ),
    Case(
        "claims stuck",
        lambda: snapshot(**healthy_base(pvcs=[objs.pvc(age=100)])),
        "ObjectsStuck",
        says=["csi-sidecars doctor pvc data -n app"],
    ),
]


@pytest.mark.parametrize("case", VS_CASES, ids=[c.id for c in VS_CASES])
def test_snapshot_diagnosis(case: Case) -> None:
    check_case(check_volume_snapshot(case.build(), NS, "snap"), case)


@pytest.mark.parametrize("case", NODE_CASES, ids=[c.id for c in NODE_CASES])
def test_node_diagnosis(case: Case) -> None:
    check_case(check_node(case.build(), "node-1"), case)


@pytest.mark.parametrize("case", DRIVER_CASES, ids=[c.id for c in DRIVER_CASES])
def test_driver_diagnosis(case: Case) -> None:
    check_case(check_driver(case.build(), DRIVER), case)


def test_driver_without_leases_only_reports_them() -> None:
    found = check_driver(snapshot(**healthy_base(leases=[])), DRIVER)
    assert found.severity is Severity.OK
    assert sum("cannot be seen" in e.message for e in found.evidence) == 2  # provisioner, attacher


def test_drivers_in_use_skips_in_tree_provisioners() -> None:
    snap = snapshot(
        **healthy_base(
            storage_classes=[
                objs.storage_class(),
                objs.storage_class("local", "kubernetes.io/no-provisioner"),
                objs.storage_class("typo", "hostpath.csi.k8s"),
            ]
        )
    )
    assert drivers_in_use(snap) == ["hostpath.csi.k8s", DRIVER]
