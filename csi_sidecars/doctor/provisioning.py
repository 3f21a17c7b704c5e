"""A Pending claim: which StorageClass, which driver, waiting for whom.

:func:`diagnose_pending` resolves the class (or the default class), hands claims that can only
bind an existing volume to :mod:`.binding`, then checks, in order, the things that block
dynamic provisioning: WaitForFirstConsumer without a schedulable Pod, the selected node (driver
registered there, topology labels), ``allowedTopologies`` no node satisfies, capacity, and
whether a provisioner for the driver runs and what it last said.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.doctor import names
from csi_sidecars.doctor.binding import named_volume, static_volumes
from csi_sidecars.doctor.common import (
    ABSENT,
    GRACE,
    UNREADABLE,
    driver_entry,
    driver_evidence,
    driver_installed,
    event_evidence,
    event_message,
    finding,
    journal_evidence,
    lease_state,
    newest,
    pods_using_claim,
    topology_mismatch,
    unscheduled_reason,
)
from csi_sidecars.doctor.placement import allowed, capacity_check, quantity, usable_nodes
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import (
    CSI_NODE,
    NODE,
    STORAGE_CLASS,
    ClusterSnapshot,
    age_text,
    created_at,
    event_component,
)
from csi_sidecars.kube.objects import (
    JsonDict,
    annotations_of,
    dig,
    labels_of,
    name,
    namespace,
    spec,
)

PROVISIONER_REASONS = ("Provisioning", "ProvisioningFailed", "ProvisioningSucceeded")
WFFC = "WaitForFirstConsumer"

#: What to do for a CreateVolume error code seen in an event message.
_CODE_ADVICE = {
    "InvalidArgument": "the driver rejects the request: check the StorageClass parameters and "
    "the claim's size and access modes",
    "ResourceExhausted": "the driver's backend is out of space or quota: free some, or use "
    "another StorageClass",
    "Unavailable": "the driver does not answer: check the driver container next to the provisioner",
    "DeadlineExceeded": "the driver is too slow: check its backend; the provisioner retries",
    "PermissionDenied": "the driver refuses the credentials: check the provisioner Secret of "
    "the StorageClass",
    "Unauthenticated": "the driver refuses the credentials: check the provisioner Secret of "
    "the StorageClass",
}


def claim_class(pvc: Mapping[str, Any]) -> str | None:
    """The claim's class: the beta annotation, else ``spec.storageClassName`` (None: unset)."""
    ann = annotations_of(pvc).get(names.ANN_BETA_STORAGE_CLASS)
    if ann is not None:
        return ann
    value = spec(pvc).get("storageClassName")
    return None if value is None else str(value)


def default_classes(snap: ClusterSnapshot) -> list[JsonDict]:
    """StorageClasses marked default, newest first (Kubernetes uses the newest)."""
    found = [
        sc
        for sc in snap.items(STORAGE_CLASS)
        if "true"
        in (
            annotations_of(sc).get(names.ANN_DEFAULT_CLASS),
            annotations_of(sc).get(names.ANN_BETA_DEFAULT_CLASS),
        )
    ]
    return sorted(found, key=lambda sc: created_at(sc) or 0.0, reverse=True)


def _class_names(snap: ClusterSnapshot) -> str:
    found = sorted(name(sc) for sc in snap.items(STORAGE_CLASS))
    return ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") if found else "(none)"


def diagnose_pending(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    """Why the Pending claim ``pvc`` has no volume yet."""
    evidence = list(facts)
    class_name = claim_class(pvc)
    if class_name is None:
        defaults = default_classes(snap)
        if not defaults:
            return _no_default(snap, ref, evidence, events)
        class_name = name(defaults[0])
        evidence.append(
            warn(
                "storageclass",
                f"the claim names no StorageClass; kube-controller-manager should assign the "
                f'default class "{class_name}" to it',
            )
        )
    if spec(pvc).get("volumeName"):
        return named_volume(snap, ref, pvc, class_name, evidence, events)
    if class_name == "":
        evidence.append(info("storageclass", 'storageClassName: "" asks for no dynamic volume'))
        return static_volumes(snap, ref, pvc, "", evidence, events)
    sc = snap.get(STORAGE_CLASS, class_name)
    if sc is None:
        if not snap.readable(STORAGE_CLASS):
            why = snap.unavailable[STORAGE_CLASS]
            evidence.append(info("storageclass", f"StorageClasses could not be read ({why})"))
            return _stuck(ref, "Unreadable", "StorageClasses could not be read.", evidence)
        return finding(
            ref,
            Severity.PROBLEM,
            "StorageClassNotFound",
            f'The claim asks for StorageClass "{class_name}", which does not exist.',
            f'create StorageClass "{class_name}", or recreate the claim with an existing '
            f"class ({_class_names(snap)})",
            [
                *evidence,
                fail("storageclass", f'no StorageClass "{class_name}"'),
                *event_evidence(snap, events),
            ],
        )
    driver = str(sc.get("provisioner") or "")
    mode = str(sc.get("volumeBindingMode") or "Immediate")
    evidence.append(
        ok(
            "storageclass",
            f'StorageClass "{class_name}": provisioner {driver}, binding {mode}, reclaim '
            f"{sc.get('reclaimPolicy') or 'Delete'}",
        )
    )
    if driver == names.NO_PROVISIONER and not (mode == WFFC and not _selected(pvc)):
        return static_volumes(snap, ref, pvc, class_name, evidence, events)
    if driver != names.NO_PROVISIONER:
        evidence += driver_evidence(snap, driver)
    selected = _selected(pvc)
    if mode == WFFC and not selected:
        return _first_consumer(snap, ref, pvc, sc, driver, evidence, events)
    if selected:
        blocked = _selected_node(snap, ref, sc, driver, selected, evidence, events)
        if blocked is not None:
            return blocked
    else:
        topo, usable, judged = usable_nodes(snap, sc, driver)
        evidence += topo
        if judged and not usable and sc.get("allowedTopologies"):
            return finding(
                ref,
                Severity.PROBLEM,
                "NoNodeSatisfiesTopology",
                f"No node that runs driver {driver} matches the allowedTopologies of "
                f'StorageClass "{class_name}", so no volume can be placed.',
                "fix the class's allowedTopologies, or label the nodes (and run the driver "
                "on them) so that one matches",
                [*evidence, *event_evidence(snap, events)],
            )
    return _provisioner(snap, ref, pvc, driver, evidence, events)


def _selected(pvc: Mapping[str, Any]) -> str:
    return str(annotations_of(pvc).get(names.ANN_SELECTED_NODE) or "")


def _stuck(ref: ObjectRef, code: str, summary: str, evidence: list[Evidence]) -> Finding:
    return finding(ref, Severity.PROBLEM, code, summary, "", evidence)


def _no_default(
    snap: ClusterSnapshot, ref: ObjectRef, evidence: list[Evidence], events: list[JsonDict]
) -> Finding:
    return finding(
        ref,
        Severity.PROBLEM,
        "NoDefaultStorageClass",
        "The claim names no StorageClass and the cluster has no default StorageClass, so "
        "nothing will provision a volume for it.",
        f'mark a class as default (annotation {names.ANN_DEFAULT_CLASS}: "true"; the claim '
        f"then gets it), or recreate the claim with a storageClassName ({_class_names(snap)})",
        [
            *evidence,
            fail(
                "storageclass", f"no StorageClass is marked default; classes: {_class_names(snap)}"
            ),
            *event_evidence(snap, events),
        ],
    )


def _first_consumer(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    sc: JsonDict,
    driver: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding:
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


def _selected_node(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    sc: JsonDict,
    driver: str,
    selected: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding | None:
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


def _provisioner(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    driver: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    lease = lease_state(snap, names.PROVISIONER, driver)
    evidence = [*evidence, lease.evidence(), journal_evidence(snap, driver, pvc)]
    age = snap.age(pvc)
    handed = annotations_of(pvc).get(names.ANN_STORAGE_PROVISIONER) or annotations_of(pvc).get(
        names.ANN_BETA_STORAGE_PROVISIONER
    )
    if handed == driver:
        evidence.append(ok("claim", f"kube-controller-manager handed the claim to {driver}"))
    elif handed:
        evidence.append(warn("claim", f"the claim is handed to provisioner {handed}, not {driver}"))
    elif age is not None and age >= GRACE:
        evidence.append(
            warn(
                "claim",
                f"kube-controller-manager has not handed the claim to a provisioner (no "
                f"{names.ANN_STORAGE_PROVISIONER} annotation): is kube-controller-manager running?",
            )
        )
    ours = [
        e
        for e in events
        if e.get("reason") in PROVISIONER_REASONS and event_component(e) != names.PV_CONTROLLER
    ]
    failure = newest(events, "ProvisioningFailed", warning=True)
    tail = [*evidence, *event_evidence(snap, events)]
    if lease.down:
        code = "ProvisionerLeaseStale" if lease.state == "stale" else "ProvisionerStopped"
        return finding(
            ref,
            Severity.PROBLEM,
            code,
            lease.not_running_summary(driver),
            lease.not_running_next(driver),
            tail,
        )
    if failure is not None:
        message = event_message(failure)
        by_kcm = event_component(failure) == names.PV_CONTROLLER
        who = (
            "kube-controller-manager cannot provision the claim"
            if by_kcm
            else ("Provisioning fails")
        )
        advice = next((a for code, a in _CODE_ADVICE.items() if f"code = {code}" in message), "")
        return finding(
            ref,
            Severity.PROBLEM,
            "ProvisioningFailed",
            f"{who}: {message}",
            advice
            or "fix the cause the message names (driver, StorageClass parameters, "
            "Secrets); the provisioner keeps retrying with back-off",
            tail,
        )
    young = age is not None and age < GRACE
    if not ours and lease.state in (ABSENT, UNREADABLE) and not young:
        if not driver_installed(snap, driver):
            return finding(
                ref,
                Severity.PROBLEM,
                "DriverNotInstalled",
                f"Driver {driver} named by the StorageClass is not installed: no CSIDriver, no "
                f"node registers it and no provisioner Lease exists.",
                f"install the CSI driver {driver}, or fix the StorageClass's provisioner name",
                tail,
            )
        return finding(
            ref,
            Severity.PROBLEM,
            "NoProvisioner",
            f"No provisioner for driver {driver} appears to be running: none has reacted to "
            f"the claim in {age_text(age)}, and no Lease shows one.",
            f"start the csi-provisioner sidecar of {driver} (with --leader-election, so that "
            f"doctor can see it), or check why it is not running",
            tail,
        )
    if not ours and not young:
        return finding(
            ref,
            Severity.WARNING,
            "ProvisionerSilent",
            f"The provisioner of {driver} runs but has not reacted to the claim in "
            f"{age_text(age)}.",
            "check the provisioner's logs (is it started for this driver name?)",
            tail,
        )
    return finding(
        ref,
        Severity.WARNING,
        "Provisioning",
        f"The volume for the claim is being provisioned by driver {driver}.",
        "wait a moment; run doctor again if the claim stays Pending",
        tail,
    )
