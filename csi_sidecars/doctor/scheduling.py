"""A claim and the scheduler: WaitForFirstConsumer, the Pods that use the claim, the node picked.

Pure helpers of :mod:`.provisioning`. A ``WaitForFirstConsumer`` claim gets its volume only
after kube-scheduler picked a node for a Pod that uses it (annotation
``volume.kubernetes.io/selected-node``): no such Pod, a Pod that names its node itself
(``spec.nodeName`` bypasses the scheduler), or a Pod the scheduler cannot place all leave it
Pending. Once a node is picked, the driver must be registered there with its topology labels.
"""

from __future__ import annotations

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import (
    driver_entry,
    event_evidence,
    finding,
    pods_using_claim,
    topology_mismatch,
    unscheduled_reason,
)
from csi_sidecars.doctor.placement import allowed, capacity_check, quantity, usable_nodes
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok
from csi_sidecars.doctor.snapshot import CSI_NODE, NODE, ClusterSnapshot
from csi_sidecars.kube.objects import JsonDict, dig, labels_of, name, namespace, spec


def first_consumer(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    sc: JsonDict,
    driver: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    """A WaitForFirstConsumer claim without a selected node: which Pod should use it, and why
    it is not scheduled."""
    pods = pods_using_claim(snap, namespace(pvc), name(pvc))
    topo, usable, judged = usable_nodes(snap, sc, driver)
    room, fits = capacity_check(
        snap, sc, driver, quantity(dig(pvc, "spec", "resources", "requests", "storage"))
    )
    placement = [*topo, *room]
    if not pods:
        return finding(
            ref,
            Severity.PROBLEM,
            "WaitingForFirstConsumer",
            f'StorageClass "{name(sc)}" binds WaitForFirstConsumer: the volume is created only '
            f"once a Pod that uses the claim is scheduled, and no Pod uses it.",
            "create the Pod that mounts the claim, or use a StorageClass with "
            "volumeBindingMode: Immediate",
            [
                *evidence,
                fail("pod", f"no Pod in namespace {namespace(pvc)} mounts the claim"),
                *placement,
                *event_evidence(snap, events),
            ],
        )
    for pod in pods:
        node_name = spec(pod).get("nodeName")
        if node_name:
            return finding(
                ref,
                Severity.PROBLEM,
                "PodBypassesScheduler",
                f"Pod {name(pod)} sets spec.nodeName ({node_name}) itself, so the scheduler "
                f"never selects a node for the WaitForFirstConsumer claim and it stays Pending.",
                "use a nodeSelector or node affinity instead of spec.nodeName, or an Immediate "
                "StorageClass",
                [
                    *evidence,
                    fail("pod", f"Pod {name(pod)} has spec.nodeName {node_name}"),
                    *placement,
                    *event_evidence(snap, events),
                ],
            )
    for pod in pods:
        reason = unscheduled_reason(pod)
        if not reason:
            continue
        if judged and not usable:
            step = f"make a node able to hold the volume: run driver {driver} there and match "
            step += "the class's allowedTopologies and the driver's topology labels"
        elif not fits:
            step = "free capacity in the driver's backend, or ask for less"
        else:
            step = "act on the scheduler's message (node selectors, taints, resources)"
        return finding(
            ref,
            Severity.PROBLEM,
            "PodUnschedulable",
            f"Pod {name(pod)} that uses the claim cannot be scheduled: {reason}",
            step,
            [
                *evidence,
                fail("pod", f"Pod {name(pod)}: {reason}"),
                *placement,
                *event_evidence(snap, events),
            ],
        )
    names_text = ", ".join(name(p) for p in pods[:3])
    return finding(
        ref,
        Severity.WARNING,
        "WaitingForScheduler",
        f"Pod(s) {names_text} use the claim and wait for the scheduler to pick a node.",
        "if this lasts, check that kube-scheduler runs",
        [
            *evidence,
            info("pod", f"Pods using the claim: {names_text}"),
            *placement,
            *event_evidence(snap, events),
        ],
    )


def selected_node(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    sc: JsonDict,
    driver: str,
    selected: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding | None:
    """What blocks provisioning for the node the scheduler picked (None: nothing)."""
    node = snap.get(NODE, selected)
    if node is None and snap.readable(NODE):
        return finding(
            ref,
            Severity.PROBLEM,
            "SelectedNodeGone",
            f"The scheduler picked node {selected} for the claim, but that node no longer exists.",
            f"the provisioner should hand the claim back to the scheduler; if it does not, "
            f"remove the annotation {names.ANN_SELECTED_NODE} from the claim",
            [
                *evidence,
                fail("node", f"Node {selected} does not exist"),
                *event_evidence(snap, events),
            ],
        )
    entry = driver_entry(snap, selected, driver)
    if entry is None and snap.readable(CSI_NODE):
        return finding(
            ref,
            Severity.PROBLEM,
            "DriverNotOnNode",
            f"The volume must be created for node {selected}, but driver {driver} is not "
            f"registered there (its CSINode has no entry for the driver).",
            f"make sure the node plugin and node-driver-registrar of {driver} run on "
            f"{selected}; kubelet adds the CSINode entry when they register",
            [
                *evidence,
                fail("node", f"CSINode {selected} does not list {driver}"),
                *event_evidence(snap, events),
            ],
        )
    lacking = topology_mismatch(snap, selected, driver)
    if lacking:
        return finding(
            ref,
            Severity.PROBLEM,
            "TopologyLabelsMissing",
            f"Node {selected} lacks the labels {', '.join(lacking)} that driver {driver} "
            f"reports as topology keys, so the provisioner cannot say where to create the volume.",
            "label the node, or fix the topology the driver's NodeGetInfo reports",
            [
                *evidence,
                fail("node", f"Node {selected} lacks labels {', '.join(lacking)}"),
                *event_evidence(snap, events),
            ],
        )
    terms = sc.get("allowedTopologies") or []
    if node is not None and not allowed(terms, labels_of(node)):
        return finding(
            ref,
            Severity.PROBLEM,
            "SelectedNodeOutsideTopology",
            f"Node {selected} picked for the claim is outside the allowedTopologies of "
            f'StorageClass "{name(sc)}".',
            "schedule the Pod onto a node inside the class's topology (node affinity), or "
            "widen allowedTopologies",
            [
                *evidence,
                fail("node", f"Node {selected} does not match allowedTopologies"),
                *event_evidence(snap, events),
            ],
        )
    node_id = entry.get("nodeID") if entry else "?"
    evidence.append(ok("node", f"selected node {selected}: driver registered (node ID {node_id})"))
    return None
