"""From a request (one object, one kind, or the whole cluster) to a :class:`Report`.

:func:`diagnose` is pure: it picks the checker of each object and, for a scan, keeps the
findings that are not healthy. Kinds are named as on the command line (``pvc``, ``pv``,
``volumeattachment``, ``volumesnapshot``, ``node``, ``driver``, with kubectl's short names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from csi_sidecars.doctor.driver import DRIVER, check_driver, drivers_in_use
from csi_sidecars.doctor.node import check_node
from csi_sidecars.doctor.pv import check_pv
from csi_sidecars.doctor.pvc import check_pvc
from csi_sidecars.doctor.report import Finding, Report, Severity
from csi_sidecars.doctor.snapshot import (
    KINDS,
    NODE,
    PV,
    PVC,
    SNAPSHOT_KINDS,
    VOLUME_ATTACHMENT,
    VOLUME_SNAPSHOT,
    ClusterSnapshot,
)
from csi_sidecars.doctor.volumeattachment import check_volume_attachment
from csi_sidecars.doctor.volumesnapshot import check_volume_snapshot, crds_missing
from csi_sidecars.kube.objects import dig, name, namespace

#: Command-line kind names -> API kind.
KIND_ALIASES = {
    **dict.fromkeys(("pvc", "pvcs", "persistentvolumeclaim", "persistentvolumeclaims"), PVC),
    **dict.fromkeys(("pv", "pvs", "persistentvolume", "persistentvolumes"), PV),
    **dict.fromkeys(("va", "volumeattachment", "volumeattachments"), VOLUME_ATTACHMENT),
    **dict.fromkeys(("vs", "volumesnapshot", "volumesnapshots"), VOLUME_SNAPSHOT),
    **dict.fromkeys(("node", "nodes", "no"), NODE),
    **dict.fromkeys(("driver", "drivers", "csidriver", "csidrivers"), DRIVER),
}
NAMESPACED = (PVC, VOLUME_SNAPSHOT)
_ORDER = (PVC, VOLUME_SNAPSHOT, PV, VOLUME_ATTACHMENT, NODE, DRIVER)


@dataclass(frozen=True)
class Target:
    """What to examine.

    Attributes:
        kind: an API kind from :data:`KIND_ALIASES` values, or None for every kind.
        name: one object's name, or None for all of that kind.
        namespace: the namespace of a namespaced object, or the scan's limit (None: all).
    """

    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


def resolve_kind(text: str) -> str | None:
    """The API kind for a command-line kind name (None when unknown)."""
    return KIND_ALIASES.get(text.lower())


def check_object(snap: ClusterSnapshot, kind: str, obj_name: str, ns: str = "") -> Finding:
    """The finding for one object.

    Raises:
        ValueError: an unknown kind.
    """
    checkers: dict[str, Callable[[], Finding]] = {
        PVC: lambda: check_pvc(snap, ns, obj_name),
        PV: lambda: check_pv(snap, obj_name),
        VOLUME_ATTACHMENT: lambda: check_volume_attachment(snap, obj_name),
        VOLUME_SNAPSHOT: lambda: check_volume_snapshot(snap, ns, obj_name),
        NODE: lambda: check_node(snap, obj_name),
        DRIVER: lambda: check_driver(snap, obj_name),
    }
    if kind not in checkers:
        raise ValueError(f"unknown kind {kind!r}")
    return checkers[kind]()


def _candidates(snap: ClusterSnapshot, kind: str, ns: str | None) -> list[tuple[str, str]]:
    """(name, namespace) of every object of ``kind`` a scan examines."""
    if kind in NAMESPACED:
        return [
            (name(o), namespace(o)) for o in snap.items(kind) if ns is None or namespace(o) == ns
        ]
    if kind == PV:
        return [
            (name(pv), "")
            for pv in snap.items(PV)
            if ns is None or dig(pv, "spec", "claimRef", "namespace") == ns
        ]
    if kind == VOLUME_ATTACHMENT:
        claims_ns = {name(pv): dig(pv, "spec", "claimRef", "namespace") for pv in snap.items(PV)}
        return [
            (name(va), "")
            for va in snap.items(VOLUME_ATTACHMENT)
            if ns is None
            or claims_ns.get(str(dig(va, "spec", "source", "persistentVolumeName"))) == ns
        ]
    if ns is not None:
        return []
    if kind == NODE:
        return [(name(n), "") for n in snap.items(NODE)]
    return [(d, "") for d in drivers_in_use(snap)]


def notes(snap: ClusterSnapshot) -> tuple[str, ...]:
    """What could not be read, as sentences."""
    out = []
    if crds_missing(snap):
        out.append("the VolumeSnapshot CRDs are not installed; snapshots were not checked")
    for kind in KINDS:
        reason = snap.unavailable.get(kind)
        if reason is None or (kind in SNAPSHOT_KINDS and crds_missing(snap)):
            continue
        out.append(
            f"{kind} objects could not be read ({reason}); checks that need them are partial"
        )
    return tuple(out)


def diagnose(snap: ClusterSnapshot, target: Target) -> Report:
    """The report for ``target``.

    Raises:
        ValueError: an unknown kind in ``target``.
    """
    if target.kind is not None and target.name is not None:
        ns = (target.namespace or "default") if target.kind in NAMESPACED else ""
        found = check_object(snap, target.kind, target.name, ns)
        scope = {"kind": target.kind, "name": target.name}
        if ns:
            scope["namespace"] = ns
        return Report(scope, (found,), 1, notes(snap))
    kinds = [target.kind] if target.kind is not None else list(_ORDER)
    findings: list[Finding] = []
    checked = 0
    for kind in kinds:
        if kind == VOLUME_SNAPSHOT and crds_missing(snap):
            continue
        for obj_name, ns in _candidates(snap, kind, target.namespace):
            checked += 1
            result = check_object(snap, kind, obj_name, ns)
            if result.severity is Severity.OK:
                continue
            if target.kind is None and result.code == "ObjectsStuck":
                continue  # the stuck objects have findings of their own
            findings.append(result)
    rank = {Severity.PROBLEM: 0, Severity.WARNING: 1, Severity.OK: 2}
    findings.sort(
        key=lambda f: (
            rank[f.severity],
            _ORDER.index(f.object.kind),
            f.object.namespace,
            f.object.name,
        )
    )
    scope = {"kind": "Cluster"}
    if target.kind is not None:
        scope["only"] = target.kind
    if target.namespace is not None:
        scope["namespace"] = target.namespace
    return Report(scope, tuple(findings), checked, notes(snap))
