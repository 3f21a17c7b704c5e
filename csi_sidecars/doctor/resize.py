"""A Bound claim asked to grow: is the resizer running, what did it say, does a Pod need to restart.

The claim's ``spec.resources.requests.storage`` above ``status.capacity.storage`` means an
expansion is due. The resizer reports through conditions (``Resizing``,
``FileSystemResizePending``, ``ControllerResizeError``, ``NodeResizeError``),
``status.allocatedResourceStatuses`` and events (``Resizing``, ``VolumeResizeFailed``, ...);
kube-controller-manager records ``ExternalExpanding`` when it hands the claim over.
"""

from __future__ import annotations

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import GRACE, event_evidence, event_message, finding, newest
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, lease_state
from csi_sidecars.doctor.placement import quantity
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, info
from csi_sidecars.doctor.snapshot import ClusterSnapshot, age_text, event_time, mapping
from csi_sidecars.kube.objects import JsonDict, dig, status
from csi_sidecars.kube.quantity import format_binary_si

RESIZER_REASONS = (
    "Resizing",
    "VolumeResizeFailed",
    "VolumeResizeSuccessful",
    "FileSystemResizeRequired",
)


def diagnose_resize(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    pv: JsonDict,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding | None:
    """The finding of a claim waiting to grow (None when no expansion is due)."""
    want = quantity(dig(pvc, "spec", "resources", "requests", "storage"))
    have = quantity(dig(pvc, "status", "capacity", "storage"))
    if want is None or have is None or want <= have:
        return None
    driver = str(dig(pv, "spec", "csi", "driver") or "")
    conditions = {
        str(c.get("type")): c
        for c in status(pvc).get("conditions") or []
        if isinstance(c, dict) and c.get("status") == "True"
    }
    allocated = str(mapping(status(pvc).get("allocatedResourceStatuses")).get("storage") or "")
    evidence = [
        *evidence,
        info(
            "resize",
            f"requested {format_binary_si(want)}, capacity {format_binary_si(have)}"
            + (f", status {allocated}" if allocated else "")
            + (f", conditions {', '.join(sorted(conditions))}" if conditions else ""),
        ),
    ]
    lease = lease_state(snap, names.RESIZER, driver)
    evidence.append(lease.evidence())
    tail = [*evidence, *event_evidence(snap, events)]
    for kind in ("ControllerResizeError", "NodeResizeError"):
        cond = conditions.get(kind)
        if cond is not None:
            where = "the driver's controller" if kind.startswith("Controller") else "the node"
            return finding(
                ref,
                Severity.PROBLEM,
                "ResizeFailed",
                f"Expanding the volume fails in {where}: "
                f"{' '.join(str(cond.get('message') or '').split())}",
                "fix the cause the message names; the resizer retries (infeasible sizes need a "
                "smaller request)",
                tail,
            )
    if allocated in ("ControllerResizeInfeasible", "NodeResizeInfeasible"):
        return finding(
            ref,
            Severity.PROBLEM,
            "ResizeInfeasible",
            f"The driver cannot grow the volume to {format_binary_si(want)} ({allocated}).",
            "lower the request back to a size the driver accepts",
            tail,
        )
    if "FileSystemResizePending" in conditions or allocated == "NodeResizePending":
        return finding(
            ref,
            Severity.WARNING,
            "FileSystemResizePending",
            "The volume is expanded; its file system grows when a Pod using the claim starts.",
            "start (or restart) a Pod that uses the claim",
            tail,
        )
    failed = newest(events, "VolumeResizeFailed", warning=True)
    if failed is not None:
        return finding(
            ref,
            Severity.PROBLEM,
            "ResizeFailed",
            f"Expanding the volume fails: {event_message(failed)}",
            "fix the cause the message names; the resizer retries",
            tail,
        )
    if lease.down:
        stem = "ResizerLeaseStale" if lease.state == "stale" else "ResizerStopped"
        return finding(
            ref,
            Severity.PROBLEM,
            stem,
            lease.not_running_summary(driver),
            lease.not_running_next(driver),
            tail,
        )
    handed = [e for e in events if e.get("reason") == "ExternalExpanding"]
    since = snap.since(min(event_time(e) for e in handed)) if handed else None
    active = any(e.get("reason") in RESIZER_REASONS for e in events) or "Resizing" in conditions
    if not active and lease.state in (ABSENT, UNREADABLE) and since is not None and since >= GRACE:
        return finding(
            ref,
            Severity.PROBLEM,
            "NoResizer",
            f"No resizer for driver {driver} appears to be running: the expansion was handed "
            f"over {age_text(since)} ago and nothing has acted on it.",
            f"start the csi-resizer sidecar of {driver} (with --leader-election, so that doctor "
            f"can see it)",
            tail,
        )
    return finding(
        ref,
        Severity.WARNING,
        "Resizing",
        f"The volume is being expanded to {format_binary_si(want)}.",
        "wait a moment; run doctor again if the size does not change",
        tail,
    )
