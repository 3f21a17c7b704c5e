"""The claim checker, table-driven: one snapshot per situation, the diagnosis it must give."""

from __future__ import annotations

import pytest

from csi_sidecars.doctor.pvc import check_pvc
from csi_sidecars.doctor.report import Severity
from tests.unit.doctor import objs
from tests.unit.doctor.objs import DRIVER, NS, Case, check_case, healthy_base, snapshot

PROV_FAIL = (
    'failed to provision volume with StorageClass "fast": rpc error: code = '
    "ResourceExhausted desc = pool is full"
)


def claim_with(**kw: object) -> dict[str, object]:
    return objs.pvc(**kw)  # type: ignore[arg-type]


CASES = [
    Case(
        "no provisioner: no Lease, no event, old claim",
        lambda: snapshot(**healthy_base(leases=[], pvcs=[claim_with(age=120)])),
        "NoProvisioner",
        says=[DRIVER, "--leader-election"],
        evidence=["a sidecar without --leader-election cannot be seen"],
    ),
    Case(
        "young claim without reaction is still in progress",
        lambda: snapshot(**healthy_base(leases=[], pvcs=[claim_with(age=3)])),
        "WaitingForProvisioner",
        Severity.WARNING,
        says=["nothing has reacted to it yet (created 3s ago)"],
    ),
    Case(
        "driver not installed at all",
        lambda: snapshot(
            **healthy_base(
                leases=[],
                csi_drivers=[],
                csi_nodes=[objs.csinode(drivers=[])],
                pvcs=[claim_with(age=120)],
            )
        ),
        "DriverNotInstalled",
        says=["not installed"],
    ),
    Case(
        "provisioner Lease stale",
        lambda: snapshot(
            **healthy_base(
                leases=[objs.provisioner_lease(ago=300, holder="prov-7f")], pvcs=[claim_with()]
            )
        ),
        "ProvisionerLeaseStale",
        says=["not running", "prov-7f", "5m ago"],
    ),
    Case(
        "provisioner Lease released",
        lambda: snapshot(
            **healthy_base(leases=[objs.provisioner_lease(ago=60, holder="")], pvcs=[claim_with()])
        ),
        "ProvisionerStopped",
        says=["released"],
    ),
    Case(
        "driver fails CreateVolume: message from the event",
        lambda: snapshot(
            **healthy_base(
                pvcs=[claim_with()],
                events=[
                    objs.event(
                        "PersistentVolumeClaim",
                        "data",
                        "Provisioning",
                        "External provisioner is provisioning volume",
                        NS,
                        ago=3,
                        component="hostpath.csi.k8s.io_x",
                    ),
                    objs.event(
                        "PersistentVolumeClaim",
                        "data",
                        "ProvisioningFailed",
                        PROV_FAIL,
                        NS,
                        warning=True,
                        ago=2,
                        component="hostpath.csi.k8s.io_x",
                        count=4,
                    ),
                ],
            )
        ),
        "ProvisioningFailed",
        says=["pool is full", "out of space"],
        evidence=["ProvisioningFailed x4"],
    ),
    Case(
        "provisioning in progress with a running provisioner",
        lambda: snapshot(
            **healthy_base(
                pvcs=[claim_with(age=30)],
                events=[
                    objs.event(
                        "PersistentVolumeClaim",
                        "data",
                        "Provisioning",
                        "External provisioner is provisioning volume",
                        NS,
                        ago=1,
                        component="prov",
                    ),
                ],
            )
        ),
        "Provisioning",
        Severity.WARNING,
        evidence=["renewed 2s ago"],
    ),
    Case(
        "running provisioner silent for long",
        lambda: snapshot(**healthy_base(pvcs=[claim_with(age=600)])),
        "ProvisionerSilent",
        Severity.WARNING,
    ),
    Case(
        "WaitForFirstConsumer without a pod",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[objs.storage_class(mode="WaitForFirstConsumer")],
                pvcs=[claim_with()],
            )
        ),
        "WaitingForFirstConsumer",
        says=["WaitForFirstConsumer", "no Pod uses it"],
        evidence=["no Pod in namespace app mounts the claim"],
    ),
    Case(
        "WaitForFirstConsumer with a pod that sets nodeName",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[objs.storage_class(mode="WaitForFirstConsumer")],
                pvcs=[claim_with()],
                pods=[objs.pod("web", ["data"], node_name="node-1")],
            )
        ),
        "PodBypassesScheduler",
        says=["spec.nodeName"],
    ),
    Case(
        "WaitForFirstConsumer pod unschedulable, topology no node satisfies",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[
                    objs.storage_class(
                        mode="WaitForFirstConsumer",
                        allowedTopologies=[
                            {
                                "matchLabelExpressions": [
                                    {"key": "topology.hostpath.csi/node", "values": ["node-9"]}
                                ]
                            }
                        ],
                    )
                ],
                pvcs=[claim_with()],
                pods=[
                    objs.pod(
                        "web",
                        ["data"],
                        unschedulable="0/1 nodes are available: 1 node(s) "
                        "didn't find available persistent volumes to bind.",
                    )
                ],
            )
        ),
        "PodUnschedulable",
        says=["didn't find available persistent volumes", "allowedTopologies"],
        evidence=["no node that registers hostpath.csi.k8s.io matches allowedTopologies"],
    ),
    Case(
        "WaitForFirstConsumer, capacity too small",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[objs.storage_class(mode="WaitForFirstConsumer")],
                csi_drivers=[objs.csidriver(capacity=True)],
                capacities=[
                    {
                        "metadata": {"name": "csisc-1", "namespace": "kube-system"},
                        "storageClassName": "fast",
                        "capacity": "100Mi",
                    }
                ],
                pvcs=[claim_with()],
                pods=[
                    objs.pod(
                        "web",
                        ["data"],
                        unschedulable="0/1 nodes are available: 1 node(s) "
                        "did not have enough free storage.",
                    )
                ],
            )
        ),
        "PodUnschedulable",
        says=["free capacity"],
        evidence=["has room for 1Gi (largest: 100Mi)"],
    ),
    Case(
        "Immediate class whose allowedTopologies no node satisfies",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[
                    objs.storage_class(
                        allowedTopologies=[
                            {
                                "matchLabelExpressions": [
                                    {"key": "topology.hostpath.csi/node", "values": ["elsewhere"]}
                                ]
                            }
                        ]
                    )
                ],
                pvcs=[claim_with()],
            )
        ),
        "NoNodeSatisfiesTopology",
    ),
    Case(
        "selected node lost its CSINode entry",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[objs.storage_class(mode="WaitForFirstConsumer")],
                csi_nodes=[objs.csinode(drivers=[])],
                pvcs=[claim_with(annotations={"volume.kubernetes.io/selected-node": "node-1"})],
            )
        ),
        "DriverNotOnNode",
        says=["node-1", "node-driver-registrar"],
    ),
    Case(
        "selected node gone",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[objs.storage_class(mode="WaitForFirstConsumer")],
                pvcs=[claim_with(annotations={"volume.kubernetes.io/selected-node": "node-7"})],
            )
        ),
        "SelectedNodeGone",
    ),
    Case(
        "selected node lacks topology labels",
        lambda: snapshot(
            **healthy_base(
                nodes=[objs.node(labels={"other": "x"})],
                storage_classes=[objs.storage_class(mode="WaitForFirstConsumer")],
                pvcs=[claim_with(annotations={"volume.kubernetes.io/selected-node": "node-1"})],
            )
        ),
        "TopologyLabelsMissing",
        says=["topology.hostpath.csi/node"],
    ),
    Case(
        "kcm cannot provision: event from persistentvolume-controller",
        lambda: snapshot(
            **healthy_base(
                pvcs=[claim_with()],
                events=[
                    objs.event(
                        "PersistentVolumeClaim",
                        "data",
                        "ProvisioningFailed",
                        "something broke",
                        NS,
                        warning=True,
                        component="persistentvolume-controller",
                    )
                ],
            )
        ),
        "ProvisioningFailed",
        says=["kube-controller-manager cannot provision"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_claim_diagnosis(case: Case) -> None:
    check_case(check_pvc(case.build(), NS, "data"), case)


def test_missing_claim_is_not_found() -> None:
    found = check_pvc(snapshot(**healthy_base()), NS, "nope")
    assert (found.code, found.severity) == ("NotFound", Severity.PROBLEM)
    assert "namespace app" in found.summary


def test_journal_record_of_the_claim_is_evidence() -> None:
    claim = claim_with(age=60)
    record = {
        "uid": "uid-data",
        "namespace": NS,
        "name": "data",
        "volumeName": "pvc-uid-data",
        "selectedNode": "node-1",
    }
    snap = snapshot(
        **healthy_base(pvcs=[claim], leases=[objs.provisioner_lease(), objs.journal([record])])
    )
    found = check_pvc(snap, NS, "data")
    journal = [e.message for e in found.evidence if e.check == "journal"]
    assert journal and "CreateVolume in flight for volume pvc-uid-data" in journal[0]


def test_unreadable_leases_are_said_honestly() -> None:
    snap = snapshot(
        **healthy_base(pvcs=[claim_with(age=120)]),
        unavailable={"Lease": "forbidden: leases is forbidden"},
    )
    found = check_pvc(snap, NS, "data")
    assert found.code == "NoProvisioner"
    assert any("Leases could not be read (forbidden" in e.message for e in found.evidence)
