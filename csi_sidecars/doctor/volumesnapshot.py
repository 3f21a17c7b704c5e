"""Why a VolumeSnapshot is not ready, or stuck Terminating.

The chain: the snapshot CRDs installed; the source claim Bound (dynamic) or the named content
(pre-provisioned); the VolumeSnapshotClass (or the driver's default class); the
snapshot-controller (Lease ``snapshot-controller-leader``), which creates and binds the
VolumeSnapshotContent; the csi-snapshotter of the driver, which cuts the snapshot and reports on
the content; then the errors on both objects. Deleting snapshots are explained by finalizer.
"""

from __future__ import annotations

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import GRACE, event_evidence, events_about, finding, not_found
from csi_sidecars.doctor.finalizers import Blocker, decide, deletion_evidence, owner_must_act
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, lease_state
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok
from csi_sidecars.doctor.snapshot import (
    PV,
    PVC,
    SNAPSHOT_CLASS,
    SNAPSHOT_CONTENT,
    VOLUME_SNAPSHOT,
    ClusterSnapshot,
    age_text,
    mapping,
)
from csi_sidecars.kube.objects import (
    JsonDict,
    annotations_of,
    dig,
    finalizers,
    is_deleting,
    name,
    namespace,
    spec,
    status,
    uid,
)


def crds_missing(snap: ClusterSnapshot) -> bool:
    """Whether the VolumeSnapshot API is not installed."""
    return snap.unavailable.get(VOLUME_SNAPSHOT, "").startswith("not installed")


def _error(obj: JsonDict | None) -> str:
    return " ".join(str(dig(obj, "status", "error", "message") or "").split())


def snapshot_driver(snap: ClusterSnapshot, vs: JsonDict) -> str:
    """The driver of a snapshot: its content's, its class's, or its source volume's."""
    content = snap.get(
        SNAPSHOT_CONTENT, str(status(vs).get("boundVolumeSnapshotContentName") or "")
    )
    if content is not None and dig(content, "spec", "driver"):
        return str(dig(content, "spec", "driver"))
    cls = snap.get(SNAPSHOT_CLASS, str(spec(vs).get("volumeSnapshotClassName") or ""))
    if cls is not None and cls.get("driver"):
        return str(cls["driver"])
    pvc = snap.get(
        PVC, str(dig(vs, "spec", "source", "persistentVolumeClaimName") or ""), namespace(vs)
    )
    pv = snap.get(PV, str(spec(pvc).get("volumeName") or "")) if pvc else None
    return str(dig(pv, "spec", "csi", "driver") or "")


def check_volume_snapshot(snap: ClusterSnapshot, ns: str, vs_name: str) -> Finding:
    """Diagnose one VolumeSnapshot."""
    ref = ObjectRef(VOLUME_SNAPSHOT, vs_name, ns)
    if crds_missing(snap):
        return finding(
            ref,
            Severity.PROBLEM,
            "SnapshotCRDsMissing",
            "The VolumeSnapshot API (snapshot.storage.k8s.io/v1) is not installed in the cluster.",
            "install the snapshot CRDs and the snapshot-controller (external-snapshotter)",
            [info("crd", f"volumesnapshots: {snap.unavailable[VOLUME_SNAPSHOT]}")],
        )
    vs = snap.get(VOLUME_SNAPSHOT, vs_name, ns)
    if vs is None:
        return not_found(ref, snap, VOLUME_SNAPSHOT)
    driver = snapshot_driver(snap, vs)
    content_name = str(status(vs).get("boundVolumeSnapshotContentName") or "")
    content = snap.get(SNAPSHOT_CONTENT, content_name) if content_name else None
    ready = bool(status(vs).get("readyToUse"))
    source = mapping(dig(vs, "spec", "source"))
    src_text = (
        f"claim {source['persistentVolumeClaimName']}"
        if source.get("persistentVolumeClaimName")
        else f"content {source.get('volumeSnapshotContentName')}"
    )
    facts: list[Evidence] = [
        info(
            "snapshot",
            f"source {src_text}, driver {driver or '?'}, ready {'yes' if ready else 'no'}, "
            f"content {content_name or '(none yet)'}, created {age_text(snap.age(vs))} ago",
        )
    ]
    events = events_about(snap, VOLUME_SNAPSHOT, vs_name, ns, uid(vs))
    if is_deleting(vs):
        return _deleting(snap, ref, vs, content, driver, facts, events)
    if ready:
        return finding(
            ref,
            Severity.OK,
            "ReadyToUse",
            "The snapshot is ready to use.",
            "",
            [*facts, *event_evidence(snap, events)],
        )
    return _not_ready(snap, ref, vs, content, driver, facts, events)


def _not_ready(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    vs: JsonDict,
    content: JsonDict | None,
    driver: str,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    evidence = list(facts)
    tail = event_evidence(snap, events)

    def problem(code: str, summary: str, next_step: str, *more: Evidence) -> Finding:
        return finding(ref, Severity.PROBLEM, code, summary, next_step, [*evidence, *more, *tail])

    for obj, what in ((vs, "snapshot"), (content, "content")):
        error = _error(obj)
        if error:
            return problem(
                "SnapshotFailed",
                f"Taking the snapshot fails: {error}",
                "fix the cause the message names; the snapshot sidecars keep retrying",
                fail(what, error),
            )
    claim = dig(vs, "spec", "source", "persistentVolumeClaimName")
    if claim:
        pvc = snap.get(PVC, str(claim), ref.namespace)
        if pvc is None and snap.readable(PVC):
            return problem(
                "SourceClaimNotFound",
                f"The snapshot's source claim {claim} does not exist.",
                "recreate the snapshot from an existing claim",
                fail("source", f"claim {ref.namespace}/{claim} does not exist"),
            )
        if pvc is not None and status(pvc).get("phase") != "Bound":
            return problem(
                "SourceClaimNotBound",
                f"The snapshot's source claim {claim} is not Bound, so there is nothing to "
                f"snapshot yet.",
                f"see: csi-sidecars doctor pvc {claim} -n {ref.namespace}",
                fail("source", f"claim {claim} is {status(pvc).get('phase') or 'Pending'}"),
            )
        class_name = spec(vs).get("volumeSnapshotClassName")
        if class_name and snap.get(SNAPSHOT_CLASS, str(class_name)) is None:
            return problem(
                "SnapshotClassNotFound",
                f'The snapshot asks for VolumeSnapshotClass "{class_name}", which does not exist.',
                f'create VolumeSnapshotClass "{class_name}" for driver {driver}',
                fail("class", f'no VolumeSnapshotClass "{class_name}"'),
            )
        if not class_name and driver:
            defaults = [
                c
                for c in snap.items(SNAPSHOT_CLASS)
                if c.get("driver") == driver
                and annotations_of(c).get(names.ANN_SNAPSHOT_DEFAULT_CLASS) == "true"
            ]
            if len(defaults) != 1:
                found = "none" if not defaults else ", ".join(name(c) for c in defaults)
                return problem(
                    "NoDefaultSnapshotClass",
                    f"The snapshot names no VolumeSnapshotClass and driver {driver} has "
                    f"{'no' if not defaults else 'more than one'} default class ({found}).",
                    f"set spec.volumeSnapshotClassName, or mark exactly one class of {driver} "
                    f'with {names.ANN_SNAPSHOT_DEFAULT_CLASS}: "true"',
                    fail("class", f"default classes for {driver}: {found}"),
                )
        if class_name:
            evidence.append(ok("class", f'VolumeSnapshotClass "{class_name}" exists'))
    controller = lease_state(snap, names.SNAPSHOT_CONTROLLER, driver)
    sidecar = lease_state(snap, names.SNAPSHOTTER, driver)
    evidence += [controller.evidence(), sidecar.evidence()]
    for lease in (controller, sidecar):
        if lease.down:
            code = "LeaseStale" if lease.state == "stale" else "Stopped"
            stem = "SnapshotController" if lease is controller else "Snapshotter"
            return problem(
                f"{stem}{code}", lease.not_running_summary(driver), lease.not_running_next(driver)
            )
    age = snap.age(vs)
    late = age is None or age >= GRACE
    if content is None and late and controller.state in (ABSENT, UNREADABLE):
        return problem(
            "NoSnapshotController",
            f"No snapshot-controller appears to be running: the snapshot has no "
            f"VolumeSnapshotContent after {age_text(age)} and no Lease shows a controller.",
            "install or start the snapshot-controller (with --leader-election, so that doctor "
            "can see it)",
        )
    cut = content is not None and dig(content, "status", "snapshotHandle")
    if content is not None and not cut and late and sidecar.state in (ABSENT, UNREADABLE):
        return problem(
            "NoSnapshotter",
            f"No csi-snapshotter for driver {driver} appears to be running: content "
            f"{name(content)} has no snapshot handle after {age_text(age)} and no Lease "
            f"shows a snapshotter.",
            f"start the csi-snapshotter sidecar of {driver} (with --leader-election, so "
            f"that doctor can see it)",
        )
    return finding(
        ref,
        Severity.WARNING,
        "SnapshotInProgress",
        "The snapshot is being taken.",
        "wait a moment; run doctor again if it does not become ready",
        [*evidence, *tail],
    )


def _deleting(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    vs: JsonDict,
    content: JsonDict | None,
    driver: str,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    since, line = deletion_evidence(snap, vs)
    evidence = [*facts, line]
    blockers: list[Blocker] = []
    for fin in finalizers(vs):
        if fin in (names.SNAPSHOT_AS_SOURCE, names.PROVISIONER_SNAPSHOT_SOURCE):
            restoring = [
                c
                for c in snap.items(PVC)
                if namespace(c) == ref.namespace
                and (status(c).get("phase") or "Pending") == "Pending"
                and any(
                    dig(c, "spec", key, "kind") == VOLUME_SNAPSHOT
                    and dig(c, "spec", key, "name") == ref.name
                    for key in ("dataSource", "dataSourceRef")
                )
            ]
            if restoring:
                shown = ", ".join(name(c) for c in restoring[:5])
                evidence.append(fail("finalizer", f"{fin}: claims restoring from it: {shown}"))
                blockers.append(
                    Blocker(
                        "SnapshotInUse",
                        f"The snapshot is being deleted, but claim(s) {shown} are still being "
                        f"restored from it.",
                        f"see: csi-sidecars doctor pvc {name(restoring[0])} -n {ref.namespace}",
                    )
                )
                continue
        if fin == names.SNAPSHOT_BOUND and content is not None:
            policy = dig(content, "spec", "deletionPolicy")
            evidence.append(info("content", f"content {name(content)}: deletionPolicy {policy}"))
            if policy == "Delete" and is_deleting(content):
                more, blocker = owner_must_act(snap, names.CONTENT_BOUND, driver, since)
                evidence += more
                error = _error(content)
                if error:
                    blocker = Blocker(
                        "SnapshotDeleteFailed",
                        f"Deleting the snapshot in driver {driver} fails: {error}",
                        "fix the cause the message names; the csi-snapshotter keeps retrying",
                    )
                if blocker is not None:
                    blockers.append(blocker)
                    continue
        more, blocker = owner_must_act(snap, fin, driver, since)
        evidence += more
        if blocker is not None:
            blockers.append(blocker)
    return decide(snap, ref, vs, evidence, blockers, events)
