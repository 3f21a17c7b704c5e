"""Why a PersistentVolume is stuck: Terminating behind a finalizer, Released and never deleted,
or Failed.

Terminating volumes are explained through their finalizers (:mod:`.finalizers`). A Released
volume with reclaim policy Delete waits for the provisioner's DeleteVolume (which it refuses
while a VolumeAttachment still uses the volume); with Retain it is kept on purpose.
"""

from __future__ import annotations

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import (
    driver_evidence,
    event_evidence,
    event_message,
    events_about,
    finding,
    newest,
    not_found,
)
from csi_sidecars.doctor.finalizers import attachments_of, volume_finalizers
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, lease_state
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import PV, PVC, ClusterSnapshot, mapping
from csi_sidecars.kube.objects import JsonDict, annotations_of, dig, is_deleting, spec, status, uid


def check_pv(snap: ClusterSnapshot, pv_name: str) -> Finding:
    """Diagnose one PersistentVolume."""
    ref = ObjectRef(PV, pv_name)
    pv = snap.get(PV, pv_name)
    if pv is None:
        return not_found(ref, snap, PV)
    driver = str(dig(pv, "spec", "csi", "driver") or "")
    phase = str(status(pv).get("phase") or "Pending")
    policy = str(spec(pv).get("persistentVolumeReclaimPolicy") or "Retain")
    claim = mapping(spec(pv).get("claimRef"))
    claim_text = f"{claim.get('namespace')}/{claim.get('name')}" if claim else "none"
    facts = [
        info(
            "volume",
            f"phase {phase}, driver {driver or '(not CSI)'}, handle "
            f"{dig(pv, 'spec', 'csi', 'volumeHandle') or '-'}, reclaim {policy}, claim "
            f"{claim_text}",
        )
    ]
    if driver:
        facts += driver_evidence(snap, driver)
    events = events_about(snap, PV, pv_name, "", uid(pv))
    if is_deleting(pv):
        return volume_finalizers(snap, ref, pv, facts, events)
    tail = [*facts, *event_evidence(snap, events)]
    if phase == "Failed":
        return finding(
            ref,
            Severity.PROBLEM,
            "VolumeFailed",
            f"The volume is Failed: {status(pv).get('message') or 'no message'}.",
            "fix the cause, then delete the volume (or set its reclaim policy to Retain and "
            "clean up by hand)",
            tail,
        )
    if phase == "Released":
        return _released(snap, ref, pv, driver, policy, facts, events)
    if phase == "Bound" and claim:
        pvc = snap.get(PVC, str(claim.get("name") or ""), str(claim.get("namespace") or ""))
        if pvc is None and snap.readable(PVC):
            return finding(
                ref,
                Severity.WARNING,
                "ClaimGone",
                f"The volume is Bound to claim {claim_text}, which no longer exists; "
                f"kube-controller-manager marks it Released shortly.",
                "if it stays Bound, check that kube-controller-manager runs",
                [
                    *facts,
                    warn("claim", f"claim {claim_text} does not exist"),
                    *event_evidence(snap, events),
                ],
            )
        return finding(
            ref, Severity.OK, "Bound", f"The volume is Bound to claim {claim_text}.", "", tail
        )
    return finding(ref, Severity.OK, phase, f"The volume is {phase}.", "", tail)


def _released(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pv: JsonDict,
    driver: str,
    policy: str,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    evidence = list(facts)
    if policy != "Delete":
        return finding(
            ref,
            Severity.OK,
            "Released",
            f"The volume is Released and kept by its reclaim policy {policy}.",
            "delete it (and its backing volume) or make it Available again by removing "
            "spec.claimRef, when it is no longer needed",
            [*evidence, *event_evidence(snap, events)],
        )
    provisioned_by = annotations_of(pv).get(names.ANN_PROVISIONED_BY, "")
    lease = lease_state(snap, names.PROVISIONER, driver or provisioned_by)
    evidence.append(lease.evidence())
    vas = attachments_of(snap, ref.name)
    tail = [*evidence, *event_evidence(snap, events)]
    if vas:
        node = dig(vas[0], "spec", "nodeName")
        return finding(
            ref,
            Severity.PROBLEM,
            "VolumeAttached",
            f"The Released volume is still attached to node {node}, so the provisioner does "
            f"not delete it yet.",
            f"see: csi-sidecars doctor volumeattachment {dig(vas[0], 'metadata', 'name')}",
            [*tail, fail("attachment", f"VolumeAttachment on node {node} uses it")],
        )
    failed = newest(events, "VolumeFailedDelete", warning=True)
    if failed is not None:
        return finding(
            ref,
            Severity.PROBLEM,
            "DeleteFailed",
            f"Deleting the volume in driver {driver} fails: {event_message(failed)}",
            "fix the cause the message names; the provisioner keeps retrying",
            tail,
        )
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
    if lease.state in (ABSENT, UNREADABLE):
        return finding(
            ref,
            Severity.WARNING,
            "WaitingForDelete",
            f"The volume is Released with reclaim policy Delete; the provisioner of {driver} "
            f"deletes it, but no Lease shows one running.",
            f"make sure the csi-provisioner of {driver} runs",
            tail,
        )
    return finding(
        ref,
        Severity.WARNING,
        "Deleting",
        f"The volume is Released; the provisioner of {driver} is deleting it.",
        "wait a moment; run doctor again if it stays",
        [*tail, ok("provisioner", "a provisioner runs for the driver")],
    )
