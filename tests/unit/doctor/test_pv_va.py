"""The PersistentVolume and VolumeAttachment checkers, table-driven."""

from __future__ import annotations

import pytest

from csi_sidecars.doctor.pv import check_pv
from csi_sidecars.doctor.report import Severity
from csi_sidecars.doctor.volumeattachment import check_volume_attachment
from tests.unit.doctor import objs
from tests.unit.doctor.objs import DRIVER, Case, check_case, healthy_base, snapshot

ATTACHER_FIN = "external-attacher/hostpath-csi-k8s-io"
PROV_FIN = "external-provisioner.volume.kubernetes.io/finalizer"


PV_CASES = [
    Case(
        "bound and healthy",
        lambda: snapshot(**healthy_base(pvs=[objs.pv()], pvcs=[objs.pvc(phase="Bound")])),
        "Bound",
        Severity.OK,
    ),
    Case(
        "bound to a claim that is gone",
        lambda: snapshot(**healthy_base(pvs=[objs.pv()], pvcs=[])),
        "ClaimGone",
        Severity.WARNING,
    ),
    Case(
        "released, Retain: kept on purpose",
        lambda: snapshot(**healthy_base(pvs=[objs.pv(phase="Released", policy="Retain")])),
        "Released",
        Severity.OK,
    ),
    Case(
        "released, Delete, DeleteVolume fails",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.pv(phase="Released")],
                events=[
                    objs.event(
                        "PersistentVolume",
                        "pvc-1",
                        "VolumeFailedDelete",
                        "rpc error: code = Internal desc = backend offline",
                        warning=True,
                    )
                ],
            )
        ),
        "DeleteFailed",
        says=["backend offline"],
    ),
    Case(
        "released, Delete, still attached",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.pv(phase="Released")], volume_attachments=[objs.va(attached=True)]
            )
        ),
        "VolumeAttached",
        says=["node-1"],
    ),
    Case(
        "released, Delete, provisioner Lease stale",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.pv(phase="Released")], leases=[objs.provisioner_lease(ago=900)]
            )
        ),
        "ProvisionerLeaseStale",
    ),
    Case(
        "failed",
        lambda: snapshot(
            **healthy_base(
                pvs=[{**objs.pv(), "status": {"phase": "Failed", "message": "recycler failed"}}]
            )
        ),
        "VolumeFailed",
        says=["recycler failed"],
    ),
    Case(
        "terminating on the attacher finalizer, no attachment, no attacher",
        lambda: snapshot(
            **healthy_base(
                leases=[],
                pvs=[
                    objs.deleting(
                        objs.pv(phase="Released", policy="Retain"), finalizers=[ATTACHER_FIN]
                    )
                ],
            )
        ),
        "NoAttacher",
        says=[ATTACHER_FIN, "csi-attacher", DRIVER],
        evidence=["a sidecar without --leader-election cannot be seen"],
    ),
    Case(
        "terminating on the attacher finalizer, attacher Lease stale",
        lambda: snapshot(
            **healthy_base(
                leases=[objs.attacher_lease(ago=120)],
                pvs=[objs.deleting(objs.pv(phase="Released"), finalizers=[ATTACHER_FIN])],
            )
        ),
        "AttacherLeaseStale",
        says=["not running"],
    ),
    Case(
        "terminating, still attached",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.deleting(objs.pv(phase="Released"), finalizers=[ATTACHER_FIN])],
                volume_attachments=[objs.va(attached=True)],
            )
        ),
        "VolumeAttached",
        says=["csi-abc", "node-1"],
    ),
    Case(
        "terminating, still bound to its claim",
        lambda: snapshot(
            **healthy_base(
                pvs=[
                    objs.deleting(objs.pv(), finalizers=["kubernetes.io/pv-protection", PROV_FIN])
                ],
                pvcs=[objs.pvc(phase="Bound")],
            )
        ),
        "VolumeBound",
        says=["app/data"],
    ),
    Case(
        "terminating, provisioner DeleteVolume fails",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.deleting(objs.pv(phase="Released"), finalizers=[PROV_FIN])],
                events=[
                    objs.event(
                        "PersistentVolume", "pvc-1", "VolumeFailedDelete", "quota", warning=True
                    )
                ],
            )
        ),
        "DeleteFailed",
    ),
    Case(
        "terminating on the provisioner finalizer, provisioner running but slow",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.deleting(objs.pv(phase="Released"), finalizers=[PROV_FIN])],
            )
        ),
        "ProvisionerNotRemovingFinalizer",
    ),
]

VA_CASES = [
    Case(
        "attached",
        lambda: snapshot(
            **healthy_base(pvs=[objs.pv()], volume_attachments=[objs.va(attached=True)])
        ),
        "Attached",
        Severity.OK,
    ),
    Case(
        "node has no CSINode entry for the driver",
        lambda: snapshot(
            **healthy_base(
                csi_nodes=[objs.csinode(drivers=["other.csi"])],
                pvs=[objs.pv()],
                volume_attachments=[
                    objs.va(
                        attachError={
                            "message": "CSINode node-1 does not contain driver hostpath.csi.k8s.io"
                        }
                    )
                ],
            )
        ),
        "DriverNotOnNode",
        says=["node-1", "node ID", "node-driver-registrar"],
        evidence=["does not contain driver"],
    ),
    Case(
        "node has no CSINode at all",
        lambda: snapshot(
            **healthy_base(csi_nodes=[], pvs=[objs.pv()], volume_attachments=[objs.va()])
        ),
        "DriverNotOnNode",
        evidence=["CSINode node-1 does not exist"],
    ),
    Case(
        "node gone",
        lambda: snapshot(
            **healthy_base(pvs=[objs.pv()], volume_attachments=[objs.va(node_name="node-9")])
        ),
        "NodeNotFound",
    ),
    Case(
        "volume gone",
        lambda: snapshot(**healthy_base(volume_attachments=[objs.va()])),
        "VolumeNotFound",
    ),
    Case(
        "driver error on attach",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.pv()],
                volume_attachments=[
                    objs.va(
                        attachError={"message": "rpc error: code = NotFound desc = volume gone"}
                    )
                ],
            )
        ),
        "AttachFailed",
        says=["volume gone"],
    ),
    Case(
        "no attacher for an old attachment",
        lambda: snapshot(
            **healthy_base(leases=[], pvs=[objs.pv()], volume_attachments=[objs.va()])
        ),
        "NoAttacher",
        evidence=["cannot be seen"],
    ),
    Case(
        "young attachment still attaching",
        lambda: snapshot(
            **healthy_base(leases=[], pvs=[objs.pv()], volume_attachments=[objs.va(age=3)])
        ),
        "Attaching",
        Severity.WARNING,
    ),
    Case(
        "attacher Lease stale",
        lambda: snapshot(
            **healthy_base(
                leases=[objs.attacher_lease(ago=99)],
                pvs=[objs.pv()],
                volume_attachments=[objs.va()],
            )
        ),
        "AttacherLeaseStale",
    ),
    Case(
        "detach fails",
        lambda: snapshot(
            **healthy_base(
                pvs=[objs.pv()],
                volume_attachments=[
                    objs.deleting(
                        objs.va(attached=True, detachError={"message": "node unreachable"}),
                        finalizers=[ATTACHER_FIN],
                    )
                ],
            )
        ),
        "DetachFailed",
        says=["node unreachable"],
    ),
    Case(
        "detaching without an attacher",
        lambda: snapshot(
            **healthy_base(
                leases=[],
                pvs=[objs.pv()],
                volume_attachments=[
                    objs.deleting(objs.va(attached=True), finalizers=[ATTACHER_FIN])
                ],
            )
        ),
        "NoAttacher",
    ),
]


@pytest.mark.parametrize("case", PV_CASES, ids=[c.id for c in PV_CASES])
def test_volume_diagnosis(case: Case) -> None:
    check_case(check_pv(case.build(), "pvc-1"), case)


@pytest.mark.parametrize("case", VA_CASES, ids=[c.id for c in VA_CASES])
def test_attachment_diagnosis(case: Case) -> None:
    check_case(check_volume_attachment(case.build(), "csi-abc"), case)


def test_missing_objects() -> None:
    snap = snapshot(**healthy_base())
    assert check_pv(snap, "nope").code == "NotFound"
    assert check_volume_attachment(snap, "nope").code == "NotFound"


def test_unreadable_kind_is_not_called_missing() -> None:
    snap = snapshot(**healthy_base(), unavailable={"PersistentVolume": "forbidden: no"})
    found = check_pv(snap, "pvc-1")
    assert found.code == "Unreadable"
    assert "forbidden" in found.summary
