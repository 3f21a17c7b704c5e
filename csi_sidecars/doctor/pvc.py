"""Why a PersistentVolumeClaim is Pending, Terminating, or not growing.

:func:`check_pvc` walks the chain a person would: the claim's StorageClass (or the default
class), the driver behind it (CSIDriver, CSINodes), WaitForFirstConsumer and the pods that use
the claim, topology and capacity, whether a provisioner for the driver runs (its Lease, its
events, its journal), and finally the events with their messages. Deleting claims are explained
through their finalizers (:mod:`.finalizers`), bound claims through their volume and resize
status (:mod:`.provisioning` holds the dynamic provisioning part).
"""

from __future__ import annotations

from csi_sidecars.doctor.common import event_evidence, events_about, finding, not_found
from csi_sidecars.doctor.finalizers import claim_finalizers
from csi_sidecars.doctor.placement import quantity
from csi_sidecars.doctor.provisioning import diagnose_pending
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok
from csi_sidecars.doctor.resize import diagnose_resize
from csi_sidecars.doctor.snapshot import PV, PVC, ClusterSnapshot, age_text
from csi_sidecars.kube.objects import JsonDict, dig, is_deleting, spec, status, uid
from csi_sidecars.kube.quantity import format_binary_si


def request_bytes(pvc: JsonDict) -> int | None:
    """The claim's ``resources.requests.storage`` in bytes."""
    return quantity(dig(pvc, "spec", "resources", "requests", "storage"))


def check_pvc(snap: ClusterSnapshot, namespace: str, claim_name: str) -> Finding:
    """Diagnose one claim.

    Args:
        snap: the cluster.
        namespace: the claim's namespace.
        claim_name: its name.
    """
    ref = ObjectRef(PVC, claim_name, namespace)
    pvc = snap.get(PVC, claim_name, namespace)
    if pvc is None:
        return not_found(ref, snap, PVC)
    phase = str(status(pvc).get("phase") or "Pending")
    size = request_bytes(pvc)
    facts = [
        info(
            "claim",
            f"phase {phase}, requests {format_binary_si(size) if size is not None else '?'}, "
            f"created {age_text(snap.age(pvc))} ago",
        )
    ]
    events = events_about(snap, PVC, claim_name, namespace, uid(pvc))
    if is_deleting(pvc):
        return claim_finalizers(snap, ref, pvc, facts, events)
    if phase == "Bound":
        return _bound(snap, ref, pvc, facts, events)
    if phase == "Lost":
        volume = str(spec(pvc).get("volumeName") or "")
        return finding(
            ref,
            Severity.PROBLEM,
            "ClaimLost",
            f"The claim is Lost: its PersistentVolume {volume} is gone, so its data is no "
            f"longer reachable through it.",
            "restore the PersistentVolume (same name and claimRef) if the volume still exists, "
            "or delete and recreate the claim",
            [*facts, fail("volume", f"PersistentVolume {volume} does not exist")],
        )
    return diagnose_pending(snap, ref, pvc, facts, events)


def _bound(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    facts: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    volume = str(spec(pvc).get("volumeName") or "")
    pv = snap.get(PV, volume)
    if pv is None:
        if not snap.readable(PV):
            return finding(
                ref,
                Severity.OK,
                "Bound",
                f"The claim is Bound to PersistentVolume {volume}.",
                "",
                [
                    *facts,
                    info("volume", f"PersistentVolumes could not be read ({snap.unavailable[PV]})"),
                ],
            )
        return finding(
            ref,
            Severity.PROBLEM,
            "VolumeMissing",
            f"The claim is Bound to PersistentVolume {volume}, which does not exist.",
            "the claim becomes Lost shortly; restore the PersistentVolume if the volume still "
            "exists",
            [*facts, fail("volume", f"PersistentVolume {volume} does not exist")],
        )
    driver = str(dig(pv, "spec", "csi", "driver") or "")
    by = f" (driver {driver})" if driver else ""
    evidence = [*facts, ok("volume", f"bound to PersistentVolume {volume}{by}")]
    resized = diagnose_resize(snap, ref, pvc, pv, evidence, events)
    if resized is not None:
        return resized
    return finding(
        ref,
        Severity.OK,
        "Bound",
        f"The claim is Bound to PersistentVolume {volume}.",
        "",
        [*evidence, *event_evidence(snap, events)],
    )
