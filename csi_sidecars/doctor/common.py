"""Pieces every checker needs: events, driver registration, pods, findings.

All pure functions of a :class:`~csi_sidecars.doctor.snapshot.ClusterSnapshot`. Whether a
sidecar runs is in :mod:`.leases`; where its Lease proves nothing (no ``--leader-election``),
checkers look for traces of its work (events, finalizers) found with these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.doctor import names
from csi_sidecars.doctor.leases import ABSENT, UNREADABLE, lease_state
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, info, ok, warn
from csi_sidecars.doctor.snapshot import (
    CSI_DRIVER,
    CSI_NODE,
    EVENT,
    NODE,
    POD,
    ClusterSnapshot,
    age_text,
    event_component,
    event_count,
    event_time,
    mapping,
)
from csi_sidecars.kube.objects import (
    JsonDict,
    dig,
    labels_of,
    name,
    namespace,
    spec,
    status,
)

#: Objects younger than this (seconds) that nothing has reacted to yet are "in progress", not
#: "stuck": the components poll and retry within seconds.
GRACE = 15.0
#: Events shown per object.
EVENTS_SHOWN = 3


# -- events ---------------------------------------------------------------------------------------


def events_about(
    snap: ClusterSnapshot, kind: str, obj_name: str, obj_namespace: str = "", obj_uid: str = ""
) -> list[JsonDict]:
    """Events about one object, newest first (an event naming another UID is left out)."""
    out = []
    for event in snap.items(EVENT):
        ref = mapping(event.get("involvedObject") or event.get("regarding"))
        if ref.get("kind") != kind or ref.get("name") != obj_name:
            continue
        if obj_namespace and (ref.get("namespace") or "") != obj_namespace:
            continue
        if obj_uid and ref.get("uid") and ref.get("uid") != obj_uid:
            continue
        out.append(event)
    # Newest first; at the same time a Warning before the Normal event that led to it.
    return sorted(out, key=lambda e: (event_time(e), e.get("type") == "Warning"), reverse=True)


def describe_event(snap: ClusterSnapshot, event: Mapping[str, Any]) -> str:
    """``Warning ProvisioningFailed x5, 3s ago, by csi-provisioner: <message>``."""
    count = event_count(event)
    times = f" x{count}" if count > 1 else ""
    when = age_text(snap.since(event_time(event) or None))
    by = event_component(event)
    source = f", by {by}" if by else ""
    message = " ".join(str(event.get("message") or event.get("note") or "").split())
    return f"{event.get('type') or 'Normal'} {event.get('reason')}{times}, {when} ago{source}: " + (
        message
    )


def event_evidence(snap: ClusterSnapshot, events: list[JsonDict]) -> list[Evidence]:
    """The newest events as evidence (warnings as ``warn``), or a line saying there are none."""
    if not snap.readable(EVENT):
        return [info("events", f"events could not be read ({snap.unavailable[EVENT]})")]
    if not events:
        return [info("events", "no events about it")]
    out = []
    for event in events[:EVENTS_SHOWN]:
        text = describe_event(snap, event)
        out.append(warn("events", text) if event.get("type") == "Warning" else info("events", text))
    if len(events) > EVENTS_SHOWN:
        out.append(info("events", f"{len(events) - EVENTS_SHOWN} older events not shown"))
    return out


def newest(
    events: Iterable[JsonDict], *reasons: str, warning: bool | None = None
) -> JsonDict | None:
    """The newest event (``events`` is newest first) with one of ``reasons``."""
    for event in events:
        if reasons and event.get("reason") not in reasons:
            continue
        if warning is not None and (event.get("type") == "Warning") != warning:
            continue
        return event
    return None


def event_message(event: Mapping[str, Any]) -> str:
    """An event's message on one line."""
    return " ".join(str(event.get("message") or event.get("note") or "").split())


# -- drivers and nodes ----------------------------------------------------------------------------


def driver_entry(snap: ClusterSnapshot, node_name: str, driver: str) -> JsonDict | None:
    """The ``spec.drivers`` entry of ``driver`` in the CSINode of ``node_name``."""
    csinode = snap.get(CSI_NODE, node_name)
    for entry in (spec(csinode).get("drivers") or []) if csinode else []:
        if isinstance(entry, dict) and entry.get("name") == driver:
            return entry
    return None


def registered_nodes(snap: ClusterSnapshot, driver: str) -> list[str]:
    """Names of the nodes whose CSINode lists ``driver``."""
    return sorted(
        name(csinode)
        for csinode in snap.items(CSI_NODE)
        if any(
            isinstance(e, dict) and e.get("name") == driver
            for e in spec(csinode).get("drivers") or []
        )
    )


def driver_evidence(snap: ClusterSnapshot, driver: str) -> list[Evidence]:
    """Whether ``driver`` is installed: its CSIDriver object and the nodes that registered it."""
    out = []
    csidriver = snap.get(CSI_DRIVER, driver)
    if csidriver is not None:
        attach = spec(csidriver).get("attachRequired")
        capacity = spec(csidriver).get("storageCapacity")
        out.append(
            ok(
                "csidriver",
                f"CSIDriver {driver} exists (attachRequired: {_yaml_bool(attach, True)}, "
                f"storageCapacity: {_yaml_bool(capacity, False)})",
            )
        )
    elif snap.readable(CSI_DRIVER):
        out.append(
            warn(
                "csidriver",
                f"no CSIDriver object named {driver}: the driver may not be installed "
                f"(or the name is misspelt)",
            )
        )
    nodes = registered_nodes(snap, driver)
    total = len(snap.items(NODE))
    if nodes:
        shown = ", ".join(nodes[:5]) + (", ..." if len(nodes) > 5 else "")
        out.append(ok("csinode", f"registered on {len(nodes)} of {total} nodes ({shown})"))
    elif snap.readable(CSI_NODE):
        out.append(
            warn(
                "csinode",
                f"no node registers {driver} (no CSINode lists it): its node plugin and "
                f"node-driver-registrar run nowhere",
            )
        )
    return out


def _yaml_bool(value: Any, default: bool) -> str:
    return "true" if (default if value is None else bool(value)) else "false"


def driver_installed(snap: ClusterSnapshot, driver: str) -> bool:
    """Whether anything shows the driver exists (CSIDriver, a CSINode entry or a Lease)."""
    if snap.get(CSI_DRIVER, driver) is not None or registered_nodes(snap, driver):
        return True
    return any(
        lease_state(snap, component, driver).state not in (ABSENT, UNREADABLE)
        for component in (names.PROVISIONER, names.ATTACHER)
    )


def topology_mismatch(snap: ClusterSnapshot, node_name: str, driver: str) -> list[str]:
    """Topology keys the driver reports on ``node_name`` that the Node lacks as labels."""
    entry = driver_entry(snap, node_name, driver)
    node = snap.get(NODE, node_name)
    if entry is None or node is None:
        return []
    labels = labels_of(node)
    return [k for k in entry.get("topologyKeys") or [] if isinstance(k, str) and k not in labels]


# -- pods ------------------------------------------------------------------------------------------


def pods_using_claim(snap: ClusterSnapshot, claim_namespace: str, claim: str) -> list[JsonDict]:
    """Pods (not finished) that mount the claim, directly or as a generic ephemeral volume."""
    out = []
    for pod in snap.items(POD):
        if namespace(pod) != claim_namespace:
            continue
        if status(pod).get("phase") in ("Succeeded", "Failed"):
            continue
        for volume in spec(pod).get("volumes") or []:
            if not isinstance(volume, dict):
                continue
            direct = dig(volume, "persistentVolumeClaim", "claimName")
            ephemeral = volume.get("ephemeral") is not None and (
                f"{name(pod)}-{volume.get('name')}" == claim
            )
            if direct == claim or ephemeral:
                out.append(pod)
                break
    return out


def unscheduled_reason(pod: Mapping[str, Any]) -> str:
    """The scheduler's message for a Pod it could not place ("" when none)."""
    for cond in status(pod).get("conditions") or []:
        if (
            isinstance(cond, dict)
            and cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
        ):
            return " ".join(str(cond.get("message") or cond.get("reason") or "").split())
    return ""


# -- findings -----------------------------------------------------------------------------------


def not_found(ref: ObjectRef, snap: ClusterSnapshot, kind: str) -> Finding:
    """The finding for an object that does not exist (or could not be read)."""
    if not snap.readable(kind):
        return Finding(
            ref,
            Severity.PROBLEM,
            "Unreadable",
            f"{kind} objects could not be read: {snap.unavailable[kind]}.",
            "run doctor with an identity that may read them (see the ClusterRole in docs/cli.md)",
        )
    where = f" in namespace {ref.namespace}" if ref.namespace else ""
    return Finding(
        ref,
        Severity.PROBLEM,
        "NotFound",
        f'{kind} "{ref.name}" does not exist{where}.',
        "check the name and namespace (-n)",
    )


def finding(
    ref: ObjectRef,
    severity: Severity,
    code: str,
    summary: str,
    next_step: str,
    evidence: Iterable[Evidence],
) -> Finding:
    """A finding with its evidence as a tuple."""
    return Finding(ref, severity, code, summary, next_step, tuple(evidence))
