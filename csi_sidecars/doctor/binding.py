"""Claims that bind to a pre-created PersistentVolume instead of a provisioned one.

Three cases: the claim names its volume (``spec.volumeName``), the claim asks for no class
(``storageClassName: ""``), or its class uses ``kubernetes.io/no-provisioner`` (local volumes).
kube-controller-manager binds them; doctor says which volume could bind and, when none can, why
each near miss does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.doctor.common import GRACE, event_evidence, finding
from csi_sidecars.doctor.placement import quantity
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import PV, ClusterSnapshot, age_text, mapping
from csi_sidecars.kube.objects import JsonDict, dig, name, namespace, spec, status, str_list
from csi_sidecars.kube.quantity import format_binary_si


def pv_class(pv: Mapping[str, Any]) -> str:
    """The PV's StorageClass ("" for none; the beta annotation wins as in Kubernetes)."""
    ann = dig(pv, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")
    return str(ann if ann is not None else spec(pv).get("storageClassName") or "")


def misfit(pv: Mapping[str, Any], pvc: Mapping[str, Any], class_name: str) -> str:
    """Why ``pv`` cannot bind ``pvc`` ("" when it can)."""
    ref = mapping(spec(pv).get("claimRef"))
    if ref and (ref.get("name") != name(pvc) or ref.get("namespace") != namespace(pvc)):
        return f"reserved for claim {ref.get('namespace')}/{ref.get('name')}"
    if ref.get("uid") and ref.get("uid") != dig(pvc, "metadata", "uid"):
        return "still bound to an earlier claim of the same name (stale claimRef.uid)"
    phase = status(pv).get("phase")
    if phase not in (None, "Available", "Pending") and not ref:
        return f"phase {phase}"
    if pv_class(pv) != class_name:
        return f'StorageClass "{pv_class(pv)}" (the claim asks for "{class_name}")'
    have, want = (
        quantity(dig(pv, "spec", "capacity", "storage")),
        quantity(dig(pvc, "spec", "resources", "requests", "storage")),
    )
    if have is not None and want is not None and have < want:
        return f"too small ({format_binary_si(have)} < {format_binary_si(want)})"
    modes = set(str_list(spec(pv).get("accessModes")))
    wanted = set(str_list(spec(pvc).get("accessModes")))
    if not wanted <= modes:
        return f"access modes {sorted(modes)} do not include {sorted(wanted - modes)}"
    if (spec(pv).get("volumeMode") or "Filesystem") != (
        spec(pvc).get("volumeMode") or "Filesystem"
    ):
        return "volumeMode differs"
    return ""


def named_volume(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    class_name: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    """The claim names its volume in ``spec.volumeName``."""
    volume = str(spec(pvc).get("volumeName"))
    pv = snap.get(PV, volume)
    if pv is None:
        return finding(
            ref,
            Severity.PROBLEM,
            "VolumeNotFound",
            f"The claim asks for PersistentVolume {volume} (spec.volumeName), which does not "
            f"exist.",
            f"create PersistentVolume {volume}, or recreate the claim without spec.volumeName",
            [*evidence, fail("volume", f"PersistentVolume {volume} does not exist")],
        )
    why = misfit(pv, pvc, class_name)
    if why:
        return finding(
            ref,
            Severity.PROBLEM,
            "VolumeMismatch",
            f"The claim asks for PersistentVolume {volume}, which cannot bind it: {why}.",
            "fix the volume or the claim so that they match (class, size, access modes, claimRef)",
            [
                *evidence,
                fail("volume", f"PersistentVolume {volume}: {why}"),
                *event_evidence(snap, events),
            ],
        )
    return _waiting_for_binder(snap, ref, pvc, [*evidence, ok("volume", f"{volume} fits")], events)


def static_volumes(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    class_name: str,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    """The claim can only bind an existing volume of class ``class_name`` ("" for none)."""
    misses: list[tuple[str, str]] = []
    fits: list[str] = []
    for pv in snap.items(PV):
        why = misfit(pv, pvc, class_name)
        if not why:
            fits.append(name(pv))
        elif pv_class(pv) == class_name and not spec(pv).get("claimRef"):
            misses.append((name(pv), why))
    what = f'class "{class_name}"' if class_name else "no class"
    if fits:
        shown = ", ".join(sorted(fits)[:5])
        return _waiting_for_binder(
            snap, ref, pvc, [*evidence, ok("volume", f"volumes that fit: {shown}")], events
        )
    near = [warn("volume", f"{n} does not fit: {why}") for n, why in sorted(misses)[:3]]
    return finding(
        ref,
        Severity.PROBLEM,
        "NoMatchingVolume",
        f"The claim can only bind a pre-created PersistentVolume with {what}, and no Available "
        f"volume matches it.",
        "create a matching PersistentVolume, or recreate the claim with a StorageClass that "
        "provisions volumes",
        [
            *evidence,
            fail("volume", f"no Available PersistentVolume with {what} fits the claim"),
            *near,
            *event_evidence(snap, events),
        ],
    )


def _waiting_for_binder(
    snap: ClusterSnapshot,
    ref: ObjectRef,
    pvc: JsonDict,
    evidence: list[Evidence],
    events: list[JsonDict],
) -> Finding:
    age = snap.age(pvc)
    young = age is not None and age < GRACE
    return finding(
        ref,
        Severity.WARNING,
        "Binding",
        "A matching PersistentVolume exists; kube-controller-manager binds it"
        + (" shortly." if young else f", but has not in {age_text(age)}."),
        "" if young else "check that kube-controller-manager runs (its PV binder controller)",
        [
            *evidence,
            info("binder", "binding is done by kube-controller-manager"),
            *event_evidence(snap, events),
        ],
    )
