"""Storage on one node: Ready, which drivers registered (CSINode), labels, failing attachments."""

from __future__ import annotations

from csi_sidecars.doctor.common import finding, not_found, topology_mismatch
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import (
    CSI_DRIVER,
    CSI_NODE,
    NODE,
    VOLUME_ATTACHMENT,
    ClusterSnapshot,
)
from csi_sidecars.kube.objects import dig, is_deleting, name, spec, status


def _ready(node: dict[str, object]) -> tuple[bool, str]:
    for cond in status(node).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True", str(
                cond.get("message") or cond.get("reason") or ""
            )
    return False, "no Ready condition"


def check_node(snap: ClusterSnapshot, node_name: str) -> Finding:
    """Diagnose the storage side of one node."""
    ref = ObjectRef(NODE, node_name)
    node = snap.get(NODE, node_name)
    if node is None:
        return not_found(ref, snap, NODE)
    ready, why = _ready(node)
    evidence: list[Evidence] = [ok("node", "Ready") if ready else fail("node", f"not Ready: {why}")]
    csinode = snap.get(CSI_NODE, node_name)
    if csinode is None:
        if not snap.readable(CSI_NODE):
            evidence.append(
                info("csinode", f"CSINodes could not be read ({snap.unavailable[CSI_NODE]})")
            )
            return finding(
                ref, Severity.WARNING, "Unreadable", "CSINodes could not be read.", "", evidence
            )
        return finding(
            ref,
            Severity.PROBLEM,
            "CSINodeMissing",
            f"Node {node_name} has no CSINode object, so no CSI driver is registered on it.",
            "check kubelet on the node (it creates the CSINode) and the drivers' "
            "node-driver-registrar",
            [*evidence, fail("csinode", f"CSINode {node_name} does not exist")],
        )
    drivers = [d for d in spec(csinode).get("drivers") or [] if isinstance(d, dict)]
    problems: list[tuple[str, str, str]] = []
    for entry in drivers:
        driver = str(entry.get("name") or "")
        lacking = topology_mismatch(snap, node_name, driver)
        text = f"{driver}: node ID {entry.get('nodeID')}"
        keys = entry.get("topologyKeys") or []
        if keys:
            text += f", topology keys {', '.join(str(k) for k in keys)}"
        if lacking:
            evidence.append(fail("csinode", f"{text}; the node lacks labels {', '.join(lacking)}"))
            problems.append(
                (
                    "TopologyLabelsMissing",
                    f"Node {node_name} lacks the labels {', '.join(lacking)} that driver {driver} "
                    f"reports as topology keys, so volumes cannot be placed on it.",
                    "label the node, or fix the topology the driver's NodeGetInfo reports",
                )
            )
        else:
            evidence.append(ok("csinode", text))
    if not drivers:
        evidence.append(info("csinode", "no CSI driver is registered on the node"))
    registered = {str(d.get("name")) for d in drivers}
    missing = sorted(name(d) for d in snap.items(CSI_DRIVER) if name(d) not in registered)
    if missing:
        evidence.append(info("csidriver", f"drivers not registered here: {', '.join(missing)}"))
    failing = []
    for va in snap.items(VOLUME_ATTACHMENT):
        if spec(va).get("nodeName") != node_name:
            continue
        error = dig(va, "status", "detachError" if is_deleting(va) else "attachError", "message")
        if error:
            failing.append(name(va))
            evidence.append(warn("attachment", f"{name(va)}: {' '.join(str(error).split())}"))
    if failing:
        problems.append(
            (
                "AttachmentsFailing",
                f"{len(failing)} VolumeAttachment(s) on node {node_name} fail.",
                f"see: csi-sidecars doctor volumeattachment {failing[0]}",
            )
        )
    if not ready:
        problems.insert(
            0,
            (
                "NodeNotReady",
                f"Node {node_name} is not Ready: {why}.",
                "fix the node (kubelet, network); volumes on it cannot be used meanwhile",
            ),
        )
    if problems:
        code, summary, step = problems[0]
        return finding(ref, Severity.PROBLEM, code, summary, step, evidence)
    return finding(
        ref,
        Severity.OK,
        "Healthy",
        f"Node {node_name} is Ready with {len(drivers)} CSI driver(s) registered.",
        "",
        evidence,
    )
