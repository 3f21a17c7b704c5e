"""Malformed objects (fields of the wrong type, bad times and quantities) never crash doctor."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.doctor.render import render_json, render_text
from csi_sidecars.doctor.scan import Target, check_object, diagnose
from tests.unit.doctor.objs import DRIVER, NS, snapshot

CLAIM_FIELDS: dict[str, Any] = {
    "storageClassName": "fast",
    "resources": {"requests": {"storage": "lots"}},
    "dataSource": "x",
    "accessModes": "RWO",
}


def garbage() -> dict[str, list[dict[str, Any]]]:
    return {
        "storage_classes": [
            {
                "metadata": {"name": "fast", "annotations": "oops"},
                "provisioner": DRIVER,
                "allowedTopologies": "zone",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
            {
                "metadata": {"name": "other"},
                "provisioner": 5,
                "allowedTopologies": [{"matchLabelExpressions": "x"}, "y"],
            },
            {"metadata": None},
        ],
        "csi_drivers": [{"metadata": {"name": DRIVER}, "spec": "nope"}],
        "csi_nodes": [
            {"metadata": {"name": "node-1"}, "spec": {"drivers": "x"}},
            {
                "metadata": {"name": "node-2"},
                "spec": {"drivers": [{"name": DRIVER, "topologyKeys": "k", "nodeID": None}, 7]},
            },
        ],
        "nodes": [
            {"metadata": {"name": "node-1", "labels": ["a"]}, "status": {"conditions": "x"}},
            {"metadata": {"name": "node-2"}, "status": {"conditions": [5, {"type": "Ready"}]}},
        ],
        "pvcs": [
            {
                "metadata": {
                    "name": "data",
                    "namespace": NS,
                    "creationTimestamp": "yesterday",
                    "annotations": {"volume.kubernetes.io/selected-node": 3},
                },
                "spec": CLAIM_FIELDS,
                "status": "bad",
            },
            {
                "metadata": {
                    "name": "bound",
                    "namespace": NS,
                    "deletionTimestamp": "soon",
                    "finalizers": "kubernetes.io/pvc-protection",
                },
                "spec": {"volumeName": ["pv"]},
                "status": {
                    "phase": "Bound",
                    "conditions": "x",
                    "allocatedResourceStatuses": "x",
                    "capacity": {"storage": 5},
                },
            },
            {
                "metadata": {"name": "grow", "namespace": NS},
                "spec": {"volumeName": "pv", "resources": {"requests": {"storage": "2Gi"}}},
                "status": {
                    "phase": "Bound",
                    "capacity": {"storage": "1Gi"},
                    "conditions": ["x", {"type": "Resizing", "status": "True"}],
                    "allocatedResourceStatuses": "x",
                },
            },
        ],
        "pvs": [
            {
                "metadata": {
                    "name": "pv",
                    "finalizers": ["external-attacher/x", 5],
                    "deletionTimestamp": "now",
                },
                "spec": {"claimRef": "x", "csi": "y", "capacity": {"storage": []}},
                "status": {"phase": 7},
            },
            {
                "metadata": {"name": "pv2"},
                "spec": {"claimRef": {"name": 1}},
                "status": {"phase": "Released"},
            },
        ],
        "volume_attachments": [
            {
                "metadata": {"name": "va"},
                "spec": {"source": "x", "attacher": None},
                "status": {"attachError": "boom"},
            },
            {
                "metadata": {"name": "va2", "deletionTimestamp": "x", "finalizers": ["a"]},
                "spec": "x",
                "status": {"detachError": {"message": ["x"]}},
            },
        ],
        "leases": [
            {
                "metadata": {"name": "hostpath-csi-k8s-io"},
                "spec": {"leaseDurationSeconds": "abc", "renewTime": 5, "holderIdentity": ["a"]},
            },
            {
                "metadata": {
                    "name": "hostpath.csi.k8s.io-provisioner-journal",
                    "annotations": {"provisioner.csi-sidecars.io/journal": "eJz%%"},
                }
            },
        ],
        "events": [
            {"involvedObject": "x"},
            {
                "involvedObject": {
                    "kind": "PersistentVolumeClaim",
                    "name": "data",
                    "namespace": NS,
                },
                "count": "many",
                "lastTimestamp": 3,
                "series": "x",
                "source": "y",
                "reason": "ProvisioningFailed",
                "type": "Warning",
                "message": ["m"],
            },
        ],
        "pods": [
            {
                "metadata": {"name": "p", "namespace": NS},
                "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": "data"}, "z"]},
                "status": {"conditions": ["x"]},
            },
        ],
        "capacities": [{"storageClassName": "fast", "capacity": "x", "maximumVolumeSize": 5}],
        "snapshots": [
            {
                "metadata": {"name": "snap", "namespace": NS},
                "spec": {"source": "x", "volumeSnapshotClassName": 5},
                "status": {"error": "x", "boundVolumeSnapshotContentName": ["c"]},
            },
            {
                "metadata": {
                    "name": "snap2",
                    "namespace": NS,
                    "deletionTimestamp": "x",
                    "finalizers": [
                        "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
                    ],
                },
                "spec": {"source": {"persistentVolumeClaimName": "data"}},
                "status": {"boundVolumeSnapshotContentName": "c"},
            },
        ],
        "snapshot_contents": [
            {
                "metadata": {"name": "c", "deletionTimestamp": "x"},
                "spec": "x",
                "status": {"error": {"message": 5}},
            }
        ],
        "snapshot_classes": [{"metadata": {"name": "k"}, "driver": ["x"]}],
    }


@pytest.mark.parametrize(
    ("kind", "name", "ns"),
    [
        ("PersistentVolumeClaim", "data", NS),
        ("PersistentVolumeClaim", "bound", NS),
        ("PersistentVolumeClaim", "grow", NS),
        ("PersistentVolume", "pv", ""),
        ("PersistentVolume", "pv2", ""),
        ("VolumeAttachment", "va", ""),
        ("VolumeAttachment", "va2", ""),
        ("VolumeSnapshot", "snap", NS),
        ("VolumeSnapshot", "snap2", NS),
        ("Node", "node-1", ""),
        ("Node", "node-2", ""),
        ("CSIDriver", DRIVER, ""),
    ],
)
def test_each_checker_survives_garbage(kind: str, name: str, ns: str) -> None:
    found = check_object(snapshot(**garbage()), kind, name, ns)
    assert found.code and found.summary
    render_text(diagnose(snapshot(**garbage()), Target(kind, name, ns or None)))


def test_a_scan_survives_garbage() -> None:
    report = diagnose(snapshot(**garbage()), Target())
    assert report.checked > 0
    assert render_json(report)
