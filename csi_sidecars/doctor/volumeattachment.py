"""Why a VolumeAttachment never attaches, or never goes away (external-attacher #215).

To attach, the attacher of ``spec.attacher`` needs the Node's CSINode entry for the driver (the
node ID ControllerPublishVolume takes), the PersistentVolume (its handle), and a driver that
answers; failures land in ``status.attachError``. To detach it removes its finalizer after
ControllerUnpublishVolume succeeded; failures land in ``status.detachError``.
"""

from __future__ import annotations

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import (
    GRACE,
    driver_entry,
    event_evidence,
    events_about,
    finding,
    not_found,
)
from csi_sidecars.doctor.finalizers import deletion_evidence, owner_must_act
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, lease_state
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import (
    CSI_DRIVER,
    CSI_NODE,
    NODE,
    PV,
    VOLUME_ATTACHMENT,
    ClusterSnapshot,
    age_text,
)
from csi_sidecars.kube.objects import (
    JsonDict,
    annotations_of,
    dig,
    finalizers,
    is_deleting,
    spec,
    status,
    uid,
)


def _error(va: JsonDict, key: str) -> str:
    return " ".join(str(dig(va, "status", key, "message") or "").split())


def check_volume_attachment(snap: ClusterSnapshot, va_name: str) -> Finding:
    """Diagnose one VolumeAttachment."""
    ref = ObjectRef(VOLUME_ATTACHMENT, va_name)
    va = snap.get(VOLUME_ATTACHMENT, va_name)
    if va is None:
        return not_found(ref, snap, VOLUME_ATTACHMENT)
    driver = str(spec(va).get("attacher") or "")
    node = str(spec(va).get("nodeName") or "")
    pv_name = str(dig(va, "spec", "source", "persistentVolumeName") or "")
    attached = bool(status(va).get("attached"))
    facts: list[Evidence] = [
        info(
            "attachment",
            f"driver {driver}, node {node}, volume {pv_name or '(inline)'}, attached "
            f"{'yes' if attached else 'no'}, created {age_text(snap.age(va))} ago",
        )
    ]
    events = events_about(snap, VOLUME_ATTACHMENT, va_name, "", uid(va))
    if is_deleting(va):
        return _detaching(snap, ref, va, driver, facts, events)
    if attached:
        return finding(
            ref,
            Severity.OK,
            "Attached",
            f"The volume is attached to node {node}.",
            "",
            [*facts, *event_evidence(snap, events)],
        )
    return _attaching(snap, ref, va, driver, node, pv_name, facts, events)


def _detaching(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    va: JsonDict,
    driver: str,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    since, line = deletion_evidence(snap, va)
    evidence = [*facts, line]
    tail_events = event_evidence(snap, events)
    error = _error(va, "detachError")
    if error:
        return finding(
            ref,
            Severity.PROBLEM,
            "DetachFailed",
            f"Detaching fails: {error}",
            "fix the cause the message names; the attacher keeps retrying (if the node is gone "
            "for good, the driver must still accept ControllerUnpublishVolume for it)",
            [
                *evidence,
                fail("detach", error),
                lease_state(snap, names.ATTACHER, driver).evidence(),
                *tail_events,
            ],
        )
    ours = names.attacher_finalizer(driver) if driver else ""
    for fin in finalizers(va):
        more, blocker = owner_must_act(snap, fin, driver, since)
        evidence += more
        if blocker is not None:
            return finding(
                ref,
                blocker.severity,
                blocker.code,
                blocker.summary,
                blocker.next_step,
                [*evidence, *tail_events],
            )
    state = "held by its finalizer" if ours in finalizers(va) else "being removed"
    return finding(
        ref,
        Severity.WARNING,
        "Detaching",
        f"The volume is being detached ({state}).",
        "wait a moment; run doctor again if it stays",
        [*evidence, *tail_events],
    )


def _attaching(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    va: JsonDict,
    driver: str,
    node: str,
    pv_name: str,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    evidence = list(facts)
    tail_events = event_evidence(snap, events)
    if snap.get(NODE, node) is None and snap.readable(NODE):
        return finding(
            ref,
            Severity.PROBLEM,
            "NodeNotFound",
            f"The attachment is for node {node}, which does not exist.",
            "delete the VolumeAttachment's Pod so the attachment is dropped, or bring the node "
            "back",
            [*evidence, fail("node", f"Node {node} does not exist"), *tail_events],
        )
    entry = driver_entry(snap, node, driver)
    if entry is None and snap.readable(CSI_NODE):
        has_csinode = snap.get(CSI_NODE, node) is not None
        what = "has no entry for the driver" if has_csinode else "does not exist"
        return finding(
            ref,
            Severity.PROBLEM,
            "DriverNotOnNode",
            f"Node {node} has no CSINode entry for driver {driver} (its CSINode {what}), so "
            f"the attacher cannot learn the node ID and cannot attach.",
            f"make sure the node plugin and node-driver-registrar of {driver} run on {node}; "
            f"kubelet adds the entry once they register",
            [
                *evidence,
                fail("csinode", f"CSINode {node} {what}"),
                *_attach_error(va),
                *tail_events,
            ],
        )
    evidence.append(
        ok(
            "csinode",
            f"node {node} registers {driver} (node ID {entry.get('nodeID') if entry else '?'})",
        )
    )
    if pv_name:
        pv = snap.get(PV, pv_name)
        if pv is None and snap.readable(PV):
            return finding(
                ref,
                Severity.PROBLEM,
                "VolumeNotFound",
                f"The attachment is for PersistentVolume {pv_name}, which does not exist.",
                "delete the Pod that uses the volume; the VolumeAttachment goes with it",
                [
                    *evidence,
                    fail("volume", f"PersistentVolume {pv_name} does not exist"),
                    *tail_events,
                ],
            )
        if pv is not None and is_deleting(pv):
            return finding(
                ref,
                Severity.PROBLEM,
                "VolumeBeingDeleted",
                f"PersistentVolume {pv_name} is being deleted; the attacher does not attach it.",
                "delete the Pod that uses the volume",
                [
                    *evidence,
                    fail("volume", f"PersistentVolume {pv_name} is being deleted"),
                    *tail_events,
                ],
            )
    csidriver = snap.get(CSI_DRIVER, driver)
    if csidriver is None and snap.readable(CSI_DRIVER):
        evidence.append(warn("csidriver", f"no CSIDriver object named {driver}"))
    elif csidriver is not None and spec(csidriver).get("attachRequired") is False:
        evidence.append(
            info("csidriver", "attachRequired is false: kubelet does not wait for this attachment")
        )
    lease = lease_state(snap, names.ATTACHER, driver)
    evidence.append(lease.evidence())
    error = _error(va, "attachError")
    if error:
        return finding(
            ref,
            Severity.PROBLEM,
            "AttachFailed",
            f"Attaching fails: {error}",
            "fix the cause the message names (driver, node, volume); the attacher keeps "
            "retrying with back-off",
            [*evidence, fail("attach", error), *tail_events],
        )
    if lease.down:
        code = "AttacherLeaseStale" if lease.state == "stale" else "AttacherStopped"
        return finding(
            ref,
            Severity.PROBLEM,
            code,
            lease.not_running_summary(driver),
            lease.not_running_next(driver),
            [*evidence, *tail_events],
        )
    seen = names.attacher_finalizer(driver) in finalizers(va) or bool(
        annotations_of(va).get("csi.alpha.kubernetes.io/node-id")
    )
    age = snap.age(va)
    if not seen and lease.state in (ABSENT, UNREADABLE) and (age is None or age >= GRACE):
        return finding(
            ref,
            Severity.PROBLEM,
            "NoAttacher",
            f"No attacher for driver {driver} appears to be running: none has touched the "
            f"attachment in {age_text(age)} (no finalizer, no node-ID annotation) and no Lease "
            f"shows one.",
            f"start the csi-attacher sidecar of {driver} (with --leader-election, so that doctor "
            f"can see it)",
            [*evidence, *tail_events],
        )
    return finding(
        ref,
        Severity.WARNING,
        "Attaching",
        f"The volume is being attached to node {node}.",
        "wait a moment; run doctor again if it stays unattached",
        [*evidence, *tail_events],
    )


def _attach_error(va: JsonDict) -> list[Evidence]:
    error = _error(va, "attachError")
    return [fail("attach", f"the attacher reports: {error}")] if error else []
