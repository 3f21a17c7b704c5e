"""Pieces every checker needs: is a sidecar running, events, driver registration, pods, journal.

All pure functions of a :class:`~csi_sidecars.doctor.snapshot.ClusterSnapshot`.

Whether a sidecar runs is judged from its leader-election Lease: held and renewed within its
duration (plus :data:`LEASE_SKEW`, since the renew time is compared with this machine's clock)
is "running"; renewed longer ago is "stale" (the holder died or cannot reach the API server); a
Lease without holder was released by a sidecar that stopped. A sidecar started without
``--leader-election`` writes no Lease, so "no Lease" proves nothing; checkers then look for
traces of its work (events, finalizers) and say honestly that it could not be seen.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.doctor import names
from csi_sidecars.doctor.report import Evidence, Finding, ObjectRef, Severity, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import (
    CSI_DRIVER,
    CSI_NODE,
    EVENT,
    LEASE,
    NODE,
    POD,
    ClusterSnapshot,
    age_text,
    event_component,
    event_count,
    event_time,
    parse_time,
)
from csi_sidecars.kube.objects import (
    JsonDict,
    annotations_of,
    dig,
    labels_of,
    name,
    namespace,
    spec,
    status,
    uid,
)

#: Objects younger than this (seconds) that nothing has reacted to yet are "in progress", not
#: "stuck": the components poll and retry within seconds.
GRACE = 15.0
#: Tolerated clock difference (seconds) when judging a Lease's renew time.
LEASE_SKEW = 5.0
#: Events shown per object.
EVENTS_SHOWN = 3

FRESH = "running"
STALE = "stale"
RELEASED = "released"
ABSENT = "absent"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class LeaseState:
    """What the Lease of one component for one driver says.

    Attributes:
        component: ``provisioner``, ``attacher``, ...
        lease: the Lease name looked for.
        state: running, stale, released, absent or unreadable.
        namespace: where the Lease was found.
        holder: its holder identity.
        renewed_ago: seconds since its renew time.
        duration: its lease duration in seconds.
        why: why Leases could not be read (state unreadable).
    """

    component: str
    lease: str
    state: str
    namespace: str = ""
    holder: str = ""
    renewed_ago: float | None = None
    duration: float = 15.0
    why: str = ""

    @property
    def title(self) -> str:
        """The sidecar's usual name (``csi-provisioner``)."""
        return names.COMPONENT_TITLES.get(self.component, self.component)

    @property
    def down(self) -> bool:
        """The Lease proves nobody holds it now (stale or released)."""
        return self.state in (STALE, RELEASED)

    def evidence(self) -> Evidence:
        """One line of evidence about the Lease."""
        where = f"Lease {self.namespace}/{self.lease}"
        if self.state == FRESH:
            return ok(
                self.component,
                f'{where} held by "{self.holder}", renewed {age_text(self.renewed_ago)} ago',
            )
        if self.state == STALE:
            return fail(
                self.component,
                f'{where} held by "{self.holder}" was last renewed '
                f"{age_text(self.renewed_ago)} ago (lease duration {int(self.duration)}s): "
                f"that {self.title} is gone or cannot reach the API server",
            )
        if self.state == RELEASED:
            return fail(
                self.component,
                f"{where} has no holder (released {age_text(self.renewed_ago)} ago): "
                f"no {self.title} with --leader-election is running",
            )
        if self.state == UNREADABLE:
            return info(
                self.component,
                f"Leases could not be read ({self.why}); cannot tell whether a {self.title} runs",
            )
        return info(
            self.component,
            f'no Lease "{self.lease}" found in any namespace; a sidecar without '
            f"--leader-election cannot be seen",
        )

    def not_running_summary(self, driver: str) -> str:
        """A sentence saying the sidecar is down, for a finding's summary."""
        if self.state == STALE:
            return (
                f"The {self.title} of driver {driver} is not running: its Lease "
                f"{self.namespace}/{self.lease} was last renewed {age_text(self.renewed_ago)} "
                f'ago by "{self.holder}".'
            )
        return (
            f"The {self.title} of driver {driver} is not running: its Lease "
            f"{self.namespace}/{self.lease} was released and nobody took it over."
        )

    def not_running_next(self, driver: str) -> str:
        """What to do when the sidecar is down."""
        return (
            f"check the {self.title} container of driver {driver} (crash loop, evicted, "
            f"scaled to zero, or unable to reach the API server) and restart it"
        )


def lease_state(snap: ClusterSnapshot, component: str, driver: str) -> LeaseState:
    """The state of ``component``'s leader-election Lease for ``driver``."""
    lease_name = names.lease_name(component, driver)
    if not snap.readable(LEASE):
        return LeaseState(component, lease_name, UNREADABLE, why=snap.unavailable[LEASE])
    found = [obj for obj in snap.items(LEASE) if name(obj) == lease_name]
    if not found:
        return LeaseState(component, lease_name, ABSENT)
    states = [_one_lease(snap, component, lease_name, obj) for obj in found]
    rank = {FRESH: 0, STALE: 1, RELEASED: 2}
    return min(states, key=lambda s: (rank[s.state], s.renewed_ago or 0.0))


def _one_lease(snap: ClusterSnapshot, component: str, lease_name: str, obj: JsonDict) -> LeaseState:
    lease_spec = spec(obj)
    holder = str(lease_spec.get("holderIdentity") or "")
    try:
        duration = float(lease_spec.get("leaseDurationSeconds") or 15)
    except (TypeError, ValueError):
        duration = 15.0
    renewed = parse_time(lease_spec.get("renewTime")) or parse_time(lease_spec.get("acquireTime"))
    ago = snap.since(renewed)
    if not holder:
        state = RELEASED
    elif ago is not None and ago <= duration + LEASE_SKEW:
        state = FRESH
    else:
        state = STALE
    return LeaseState(component, lease_name, state, namespace(obj), holder, ago, duration)


# -- events ---------------------------------------------------------------------------------------


def events_about(
    snap: ClusterSnapshot, kind: str, obj_name: str, obj_namespace: str = "", obj_uid: str = ""
) -> list[JsonDict]:
    """Events about one object, newest first (an event naming another UID is left out)."""
    out = []
    for event in snap.items(EVENT):
        ref = event.get("involvedObject") or event.get("regarding") or {}
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


# -- the provisioner's journal --------------------------------------------------------------------


def journal_records(snap: ClusterSnapshot, driver: str) -> tuple[str, list[JsonDict], str]:
    """Our provisioner's journal for ``driver``: (``namespace/name`` or "", records, problem).

    The Lease annotation holds base64 of zlib-compressed JSON ``{"v": 1, "records": [...]}``;
    each record names the claim (``namespace``, ``name``, ``uid``) and the volume.
    """
    wanted = names.journal_name(driver)
    for obj in snap.items(LEASE):
        if name(obj) != wanted:
            continue
        where = f"{namespace(obj)}/{wanted}"
        raw = annotations_of(obj).get(names.ANN_JOURNAL)
        if not raw:
            return where, [], ""
        try:
            data = json.loads(zlib.decompress(base64.b64decode(raw)))
        except (ValueError, zlib.error) as exc:
            return where, [], f"journal is not readable: {exc}"
        if not isinstance(data, dict) or data.get("v") != 1:
            return where, [], "journal has an unknown format"
        records = [r for r in data.get("records") or [] if isinstance(r, dict)]
        return where, records, ""
    return "", [], ""


def journal_evidence(snap: ClusterSnapshot, driver: str, claim: Mapping[str, Any]) -> Evidence:
    """What the provisioner's journal says about ``claim``."""
    where, records, problem = journal_records(snap, driver)
    if not where:
        return info(
            "journal",
            "no provisioner journal for this driver (the Go provisioner keeps none; ours keeps "
            "it only while it leads)",
        )
    if problem:
        return warn("journal", f"{where}: {problem}")
    claim_uid = uid(claim)
    for record in records:
        if record.get("uid") == claim_uid:
            return info(
                "journal",
                f"{where} records a CreateVolume in flight for volume "
                f"{record.get('volumeName')} (selected node "
                f"{record.get('selectedNode') or 'none'}): the provisioner retries it",
            )
    return info(
        "journal", f"{where} has no record for this claim ({len(records)} records in flight)"
    )


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
