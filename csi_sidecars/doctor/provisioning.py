"""A Pending claim: which StorageClass, which driver, waiting for whom.

:func:`diagnose_pending` resolves the class (or the default class), hands claims that can only
bind an existing volume to :mod:`.binding`, then checks, in order, the things that block
dynamic provisioning: WaitForFirstConsumer without a schedulable Pod and the selected node
(driver registered there, topology labels; both in :mod:`.scheduling`), ``allowedTopologies``
no node satisfies, and whether a provisioner for the driver runs and what it last said.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.doctor import names
from csi_sidecars.doctor.binding import named_volume, static_volumes
from csi_sidecars.doctor.common import (
    GRACE,
    driver_evidence,
    driver_installed,
    event_evidence,
    event_message,
    finding,
    newest,
)
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, journal_evidence, lease_state
from csi_sidecars.doctor.placement import usable_nodes
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.scheduling import first_consumer, selected_node
from csi_sidecars.doctor.snapshot import (
    STORAGE_CLASS,
    ClusterSnapshot,
    age_text,
    created_at,
    event_component,
)
from csi_sidecars.kube.objects import (
    JsonDict,
    annotations_of,
    name,
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
        if len(defaults) > 1:
            others = ", ".join(name(d) for d in defaults[1:])
            evidence.append(
                warn(
                    "storageclass",
                    f"more than one default class; the newest is used (also default: {others})",
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
        return first_consumer(snap, ref, pvc, sc, driver, evidence, events)
    if selected:
        blocked = selected_node(snap, ref, sc, driver, selected, evidence, events)
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
    if not ours:
        return finding(
            ref,
            Severity.WARNING,
            "WaitingForProvisioner",
            f"The claim waits for a provisioner of driver {driver}; nothing has reacted to it "
            f"yet (created {age_text(age)} ago).",
            "wait a moment; run doctor again if the claim stays Pending",
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
