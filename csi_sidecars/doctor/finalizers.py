"""Objects stuck Terminating: which finalizer holds them, who must remove it, and why it has not.

For each finalizer doctor knows who removes it and when (:mod:`.names`). If that condition is
not met yet (a Pod still uses the claim, a VolumeAttachment still uses the volume), the finding
names what is in the way. If it is met, the owner should have acted: doctor checks whether that
component runs (its Lease) and, past :data:`~.common.GRACE`, reports it as the blocker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import (
    GRACE,
    event_evidence,
    event_message,
    finding,
    newest,
    pods_using_claim,
)
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, lease_state
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import (
    PVC,
    VOLUME_ATTACHMENT,
    VOLUME_SNAPSHOT,
    ClusterSnapshot,
    age_text,
    deleted_at,
    mapping,
)
from csi_sidecars.kube.objects import JsonDict, dig, finalizers, name, namespace, spec, status

#: Component -> the CamelCase stem of finding codes about it.
CODE_STEM = {
    names.PROVISIONER: "Provisioner",
    names.ATTACHER: "Attacher",
    names.RESIZER: "Resizer",
    names.SNAPSHOTTER: "Snapshotter",
    names.SNAPSHOT_CONTROLLER: "SnapshotController",
}


@dataclass(frozen=True)
class Blocker:
    """What keeps an object from going away (or from progressing)."""

    code: str
    summary: str
    next_step: str
    severity: Severity = Severity.PROBLEM


def owner_must_act(
    snap: ClusterSnapshot, finalizer: str, driver: str, since: float | None
) -> tuple[list[Evidence], Blocker | None]:
    """``finalizer`` is removable now: does its owner run, and has it had time to act?"""
    owner = names.finalizer_owner(finalizer)
    late = since is None or since >= GRACE
    waited = age_text(since)
    if owner is None:
        return [warn("finalizer", f"{finalizer}: doctor does not know who removes it")], Blocker(
            "UnknownFinalizer",
            f"The object waits for finalizer {finalizer}, which doctor does not know; whatever "
            f"added it must remove it.",
            "find the controller that owns the finalizer (its name usually says) and check it; "
            "remove the finalizer by hand only if that controller is gone for good",
        )
    text = f"{finalizer}: removed by {names.COMPONENT_TITLES[owner.component]} {owner.when}"
    if owner.component == names.KCM:
        evidence = [info("finalizer", text)]
        if not late:
            return evidence, None
        return evidence, Blocker(
            "FinalizerNotRemoved",
            f"Nothing holds finalizer {finalizer} any more, yet kube-controller-manager has not "
            f"removed it in {waited}.",
            "check that kube-controller-manager runs and is healthy",
        )
    lease = lease_state(snap, owner.component, driver)
    evidence = [
        info("finalizer", text + (f" (driver {driver})" if driver else "")),
        lease.evidence(),
    ]
    stem = CODE_STEM[owner.component]
    if lease.down:
        return evidence, Blocker(
            f"{stem}LeaseStale" if lease.state == "stale" else f"{stem}Stopped",
            f"Finalizer {finalizer} waits for the {lease.title} of driver {driver}, which is not "
            f"running (its Lease {lease.namespace}/{lease.lease} is {lease.state}).",
            lease.not_running_next(driver),
        )
    if not late:
        return evidence, None
    if lease.state in (ABSENT, UNREADABLE):
        return evidence, Blocker(
            f"No{stem}",
            f"Finalizer {finalizer} is removed by the {lease.title} of driver {driver} "
            f"{owner.when}; nothing else holds it, but it is still there after {waited} and no "
            f"Lease shows a {lease.title} running.",
            f"start the {lease.title} of driver {driver} (with --leader-election, so that "
            f"doctor can see it)",
        )
    return evidence, Blocker(
        f"{stem}NotRemovingFinalizer",
        f"The {lease.title} of driver {driver} runs but has not removed finalizer {finalizer} "
        f"in {waited}.",
        f"check the logs of the {lease.title} of driver {driver}",
    )


def decide(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    obj: JsonDict,
    evidence: list[Evidence],
    blockers: Iterable[Blocker],
    events: list[JsonDict],
) -> Finding:
    """The finding of a deleting object from its blockers (the first one is the diagnosis)."""
    tail = [*evidence, *event_evidence(snap, events)]
    first = next(iter(blockers), None)
    if first is not None:
        return finding(ref, first.severity, first.code, first.summary, first.next_step, tail)
    pending = ", ".join(finalizers(obj)) or "none"
    return finding(
        ref,
        Severity.WARNING,
        "Deleting",
        f"The {ref.kind} is being deleted (finalizers: {pending}).",
        "wait a moment; run doctor again if it stays",
        tail,
    )


def deletion_evidence(snap: ClusterSnapshot, obj: JsonDict) -> tuple[float | None, Evidence]:
    """Seconds since deletion was requested, and a line saying so with the finalizers."""
    since = snap.since(deleted_at(obj))
    held = ", ".join(finalizers(obj)) or "no finalizers"
    return since, info("deletion", f"deletion requested {age_text(since)} ago; held by {held}")


def claim_finalizers(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    """A claim with a deletion timestamp."""
    since, line = deletion_evidence(snap, pvc)
    evidence = [*facts, line]
    blockers: list[Blocker] = []
    driver = str(dig(pvc, "metadata", "annotations", names.ANN_STORAGE_PROVISIONER) or "")
    for fin in finalizers(pvc):
        if fin == names.PVC_PROTECTION:
            pods = pods_using_claim(snap, ref.namespace, ref.name)
            if pods:
                shown = ", ".join(name(p) for p in pods[:5])
                evidence.append(fail("finalizer", f"{fin}: Pods still use the claim: {shown}"))
                blockers.append(
                    Blocker(
                        "ClaimInUse",
                        f"The claim is being deleted, but Pod(s) {shown} still use it; "
                        f"kube-controller-manager removes {fin} once none does.",
                        "delete those Pods or wait for them to finish",
                    )
                )
                continue
        elif fin == names.PVC_AS_SNAPSHOT_SOURCE:
            cutting = [
                s
                for s in snap.items(VOLUME_SNAPSHOT)
                if namespace(s) == ref.namespace
                and dig(s, "spec", "source", "persistentVolumeClaimName") == ref.name
                and not status(s).get("readyToUse")
            ]
            if cutting:
                shown = ", ".join(name(s) for s in cutting[:5])
                evidence.append(fail("finalizer", f"{fin}: snapshots being cut: {shown}"))
                blockers.append(
                    Blocker(
                        "SnapshotInProgress",
                        f"The claim is being deleted, but VolumeSnapshot(s) {shown} of it are not "
                        f"ready yet; the snapshot-controller removes {fin} once they are.",
                        f"wait for the snapshots, or see: csi-sidecars doctor volumesnapshot "
                        f"{name(cutting[0])} -n {ref.namespace}",
                    )
                )
                continue
        elif fin == names.CLONE_SOURCE_FINALIZER:
            clones = [
                c
                for c in snap.items(PVC)
                if namespace(c) == ref.namespace
                and dig(c, "spec", "dataSource", "kind") == "PersistentVolumeClaim"
                and dig(c, "spec", "dataSource", "name") == ref.name
                and (status(c).get("phase") or "Pending") == "Pending"
            ]
            if clones:
                shown = ", ".join(name(c) for c in clones[:5])
                evidence.append(fail("finalizer", f"{fin}: clones still Pending: {shown}"))
                blockers.append(
                    Blocker(
                        "CloneInProgress",
                        f"The claim is being deleted, but claim(s) {shown} cloned from it are "
                        f"still Pending; the provisioner removes {fin} once they are provisioned.",
                        f"see: csi-sidecars doctor pvc {name(clones[0])} -n {ref.namespace}",
                    )
                )
                continue
        more, blocker = owner_must_act(snap, fin, driver, since)
        evidence += more
        if blocker is not None:
            blockers.append(blocker)
    return decide(snap, ref, pvc, evidence, blockers, events)


def attachments_of(snap: ClusterSnapshot, pv_name: str) -> list[JsonDict]:
    """VolumeAttachments whose source is PersistentVolume ``pv_name``."""
    return [
        va
        for va in snap.items(VOLUME_ATTACHMENT)
        if dig(va, "spec", "source", "persistentVolumeName") == pv_name
    ]


def volume_finalizers(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pv: JsonDict,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    """A PersistentVolume with a deletion timestamp."""
    since, line = deletion_evidence(snap, pv)
    evidence = [*facts, line]
    blockers: list[Blocker] = []
    driver = str(dig(pv, "spec", "csi", "driver") or "")
    phase = status(pv).get("phase")
    claim = mapping(spec(pv).get("claimRef"))
    claim_text = f"{claim.get('namespace')}/{claim.get('name')}"
    bound = (
        phase == "Bound"
        and snap.get(PVC, str(claim.get("name") or ""), str(claim.get("namespace") or ""))
        is not None
    )
    vas = attachments_of(snap, ref.name)
    for fin in finalizers(pv):
        if fin in (names.PV_PROTECTION, names.PROVISIONER_PV_FINALIZER) and bound:
            evidence.append(fail("finalizer", f"{fin}: still bound to claim {claim_text}"))
            blockers.append(
                Blocker(
                    "VolumeBound",
                    f"The volume is being deleted but is still bound to claim {claim_text}; its "
                    f"finalizers stay until the claim is deleted.",
                    f"delete claim {claim_text} (after its Pods) if the data may go",
                )
            )
            continue
        uses_attachment = fin == names.PROVISIONER_PV_FINALIZER or fin.startswith(
            names.ATTACHER_FINALIZER_PREFIX
        )
        if uses_attachment and vas:
            va = vas[0]
            node = dig(va, "spec", "nodeName")
            evidence.append(
                fail("finalizer", f"{fin}: VolumeAttachment {name(va)} (node {node}) uses it")
            )
            blockers.append(
                Blocker(
                    "VolumeAttached",
                    f"The volume is being deleted but is still attached to node {node} "
                    f"(VolumeAttachment {name(va)}); {fin} stays until it is detached.",
                    f"stop the Pods using it on {node}; see: csi-sidecars doctor "
                    f"volumeattachment {name(va)}",
                )
            )
            continue
        failed = newest(events, "VolumeFailedDelete", warning=True)
        if fin == names.PROVISIONER_PV_FINALIZER and failed is not None:
            evidence.append(fail("finalizer", f"{fin}: DeleteVolume fails"))
            blockers.append(
                Blocker(
                    "DeleteFailed",
                    f"Deleting the volume in driver {driver} fails: {event_message(failed)}",
                    "fix the cause the message names; the provisioner keeps retrying",
                )
            )
            continue
        if fin == names.PV_PROTECTION and phase == "Bound" and not bound:
            evidence.append(ok("finalizer", f"{fin}: its claim {claim_text} is gone"))
        more, blocker = owner_must_act(snap, fin, driver or _driver_of(fin), since)
        evidence += more
        if blocker is not None:
            blockers.append(blocker)
    return decide(snap, ref, pv, evidence, blockers, events)


def _driver_of(finalizer: str) -> str:
    prefix = names.ATTACHER_FINALIZER_PREFIX
    return finalizer[len(prefix) :] if finalizer.startswith(prefix) else ""
