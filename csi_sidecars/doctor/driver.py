"""One CSI driver as a whole: installed, registered on nodes, which sidecars run, what is stuck.

The sidecars that should run follow from the cluster: a provisioner when a StorageClass uses the
driver, an attacher unless the CSIDriver says ``attachRequired: false``, a resizer when one of
its classes allows expansion, a snapshotter when a VolumeSnapshotClass names it. A stale or
released Lease is a problem; a missing one is only reported (a sidecar without
``--leader-election`` writes none).
"""

from __future__ import annotations

from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import GRACE, driver_evidence, finding, registered_nodes
from csi_sidecars.doctor.finalizers import CODE_STEM
from csi_sidecars.doctor.leases import LeaseState, lease_state
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, info, warn
from csi_sidecars.doctor.snapshot import (
    CSI_DRIVER,
    PV,
    PVC,
    SNAPSHOT_CLASS,
    STORAGE_CLASS,
    VOLUME_ATTACHMENT,
    ClusterSnapshot,
)
from csi_sidecars.kube.objects import dig, is_deleting, name, spec, status

DRIVER = "CSIDriver"


def drivers_in_use(snap: ClusterSnapshot) -> list[str]:
    """Every driver the cluster mentions: CSIDrivers, StorageClasses, CSI PVs, CSINodes."""
    found = {name(d) for d in snap.items(CSI_DRIVER)}
    found |= {
        str(sc.get("provisioner"))
        for sc in snap.items(STORAGE_CLASS)
        if sc.get("provisioner") and not str(sc.get("provisioner")).startswith("kubernetes.io/")
    }
    found |= {
        str(dig(pv, "spec", "csi", "driver"))
        for pv in snap.items(PV)
        if dig(pv, "spec", "csi", "driver")
    }
    return sorted(found)


def check_driver(snap: ClusterSnapshot, driver: str) -> Finding:
    """Diagnose one driver."""
    ref = ObjectRef(DRIVER, driver)
    csidriver = snap.get(CSI_DRIVER, driver)
    evidence: list[Evidence] = list(driver_evidence(snap, driver))
    classes = sorted(
        name(sc) for sc in snap.items(STORAGE_CLASS) if sc.get("provisioner") == driver
    )
    evidence.append(
        info("storageclass", f"StorageClasses using it: {', '.join(classes)}")
        if classes
        else info("storageclass", "no StorageClass uses it")
    )
    wanted: list[str] = []
    if classes:
        wanted.append(names.PROVISIONER)
    if csidriver is None or spec(csidriver).get("attachRequired") is not False:
        wanted.append(names.ATTACHER)
    if any(
        sc.get("allowVolumeExpansion")
        for sc in snap.items(STORAGE_CLASS)
        if sc.get("provisioner") == driver
    ):
        wanted.append(names.RESIZER)
    if any(c.get("driver") == driver for c in snap.items(SNAPSHOT_CLASS)):
        wanted.append(names.SNAPSHOTTER)
    leases: list[LeaseState] = [lease_state(snap, c, driver) for c in wanted]
    evidence += [lease.evidence() for lease in leases]
    stuck = _stuck_claims(snap, classes)
    if stuck:
        evidence.append(
            warn(
                "claims",
                f"{len(stuck)} claim(s) Pending for over {int(GRACE)}s: {', '.join(stuck[:5])}",
            )
        )
    failing = [
        name(va)
        for va in snap.items(VOLUME_ATTACHMENT)
        if spec(va).get("attacher") == driver
        and dig(va, "status", "detachError" if is_deleting(va) else "attachError", "message")
    ]
    if failing:
        evidence.append(
            warn(
                "attachments",
                f"{len(failing)} VolumeAttachment(s) failing: {', '.join(failing[:5])}",
            )
        )
    nodes = registered_nodes(snap, driver)
    if csidriver is None and not nodes and all(lease.state == "absent" for lease in leases):
        return finding(
            ref,
            Severity.PROBLEM,
            "DriverNotInstalled",
            f"Driver {driver} is not installed: no CSIDriver object, no node registers it, and "
            f"no sidecar Lease exists.",
            f"install the driver {driver}"
            + (
                f" or fix the StorageClasses that name it ({', '.join(classes)})" if classes else ""
            ),
            evidence,
        )
    for lease in leases:
        if lease.down:
            code = f"{CODE_STEM[lease.component]}" + (
                "LeaseStale" if lease.state == "stale" else "Stopped"
            )
            return finding(
                ref,
                Severity.PROBLEM,
                code,
                lease.not_running_summary(driver),
                lease.not_running_next(driver),
                evidence,
            )
    if not nodes:
        return finding(
            ref,
            Severity.PROBLEM,
            "DriverNotOnAnyNode",
            f"No node registers driver {driver}, so its volumes cannot be mounted anywhere.",
            f"check the node plugin DaemonSet of {driver} and its node-driver-registrar",
            evidence,
        )
    if stuck or failing:
        what = []
        if stuck:
            what.append(f"{len(stuck)} claim(s) are stuck Pending")
        if failing:
            what.append(f"{len(failing)} attachment(s) fail")
        first = (
            f"csi-sidecars doctor pvc {stuck[0].split('/')[1]} -n {stuck[0].split('/')[0]}"
            if stuck
            else (f"csi-sidecars doctor volumeattachment {failing[0]}")
        )
        return finding(
            ref,
            Severity.PROBLEM,
            "ObjectsStuck",
            f"Driver {driver} is installed, but {' and '.join(what)}.",
            f"see: {first}",
            evidence,
        )
    return finding(
        ref,
        Severity.OK,
        "Healthy",
        f"Driver {driver} is installed on {len(nodes)} node(s) and nothing of it is stuck.",
        "",
        evidence,
    )


def _stuck_claims(snap: ClusterSnapshot, classes: list[str]) -> list[str]:
    out = []
    for pvc in snap.items(PVC):
        if spec(pvc).get("storageClassName") not in classes:
            continue
        age = snap.age(pvc)
        if (status(pvc).get("phase") or "Pending") == "Pending" and (age is None or age >= GRACE):
            out.append(f"{dig(pvc, 'metadata', 'namespace')}/{name(pvc)}")
    return sorted(out)
