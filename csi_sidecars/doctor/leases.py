"""What the sidecars leave in Leases: whether one is running, and our provisioner's journal.

A sidecar is judged from its leader-election Lease: held and renewed within its duration (plus
:data:`LEASE_SKEW`, since the renew time is compared with this machine's clock) is "running";
renewed longer ago is "stale" (the holder died or cannot reach the API server); a Lease without
holder was released by a sidecar that stopped. A sidecar started without ``--leader-election``
writes no Lease, so "no Lease" proves nothing, and the evidence says so.

Our provisioner also keeps a journal Lease ``<driver>-provisioner-journal`` of CreateVolume calls
that may be in flight (with ``--node-deployment``, one per node:
``<driver>-<node>-provisioner-journal``); its annotation holds base64 of zlib-compressed JSON
``{"v": 1, "records": [...]}``, each record naming the claim (``namespace``, ``name``, ``uid``)
and the volume. It is decoded here from that documented format.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.doctor import names
from csi_sidecars.doctor.report import Evidence, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import LEASE, NODE, ClusterSnapshot, age_text, parse_time
from csi_sidecars.kube.objects import JsonDict, annotations_of, name, namespace, spec, uid

#: Tolerated clock difference (seconds) when judging a Lease's renew time.
LEASE_SKEW = 5.0

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


# -- the provisioner's journal --------------------------------------------------------------------


def journal_records(
    snap: ClusterSnapshot, driver: str, node: str = ""
) -> tuple[str, list[JsonDict], str]:
    """Our provisioner's journal for ``driver``: (``namespace/name`` or "", records, problem).

    ``node`` selects the journal of that node's provisioner (``--node-deployment``). The Lease
    annotation holds base64 of zlib-compressed JSON ``{"v": 1, "records": [...]}``; each record
    names the claim (``namespace``, ``name``, ``uid``) and the volume.
    """
    wanted = names.journal_name(driver, node)
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


def all_journals(
    snap: ClusterSnapshot, driver: str, claim: Mapping[str, Any]
) -> list[tuple[str, list[JsonDict], str]]:
    """Every journal of ``driver`` that exists: the central one and each node's.

    Nodes are those in the snapshot plus the claim's selected node (whose Node may be gone).
    """
    nodes = {name(node) for node in snap.items(NODE)}
    selected = annotations_of(claim).get(names.ANN_SELECTED_NODE)
    if selected:
        nodes.add(selected)
    found = []
    for node in ["", *sorted(nodes)]:
        where, records, problem = journal_records(snap, driver, node)
        if where:
            found.append((where, records, problem))
    return found


def journal_evidence(snap: ClusterSnapshot, driver: str, claim: Mapping[str, Any]) -> Evidence:
    """What the provisioner's journals (central, or one per node) say about ``claim``."""
    journals = all_journals(snap, driver, claim)
    if not journals:
        return info(
            "journal",
            "no provisioner journal for this driver (the Go provisioner keeps none; ours keeps "
            "it only while it leads, or one per node with --node-deployment)",
        )
    claim_uid = uid(claim)
    in_flight = 0
    problems = []
    for where, records, problem in journals:
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        in_flight += len(records)
        for record in records:
            if record.get("uid") == claim_uid:
                return info(
                    "journal",
                    f"{where} records a CreateVolume in flight for volume "
                    f"{record.get('volumeName')} (selected node "
                    f"{record.get('selectedNode') or 'none'}): the provisioner retries it",
                )
    if problems:
        return warn("journal", "; ".join(problems))
    where = journals[0][0] if len(journals) == 1 else f"{len(journals)} journals"
    return info("journal", f"{where} has no record for this claim ({in_flight} records in flight)")
