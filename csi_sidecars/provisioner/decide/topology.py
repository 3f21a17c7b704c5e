"""CreateVolume accessibility requirements and PV node affinity (Go ``pkg/controller/topology.go``).

The requirement depends on the binding mode, ``--strict-topology``, ``--immediate-topology`` and
the StorageClass ``allowedTopologies``:

==============  ======  =================  ==================  ===============================
late binding    strict  allowedTopologies  immediate-topology  requisite / preferred
==============  ======  =================  ==================  ===============================
yes             yes     any (must contain  any                 selected node's segment only
                        the selected node)
yes             no      no                 any                 all nodes' segments, selected
                                                               node's first
yes             no      yes                any                 flattened allowedTopologies,
                                                               selected node's first
no              any     yes                any                 flattened allowedTopologies,
                                                               StatefulSet-hash rotation
no              any     no                 true                all nodes' segments,
                                                               StatefulSet-hash rotation
no              any     no                 false               none
==============  ======  =================  ==================  ===============================

Topology keys come from the CSINode of the selected node (immediate binding: one CSINode that
lists keys for the driver); values from the Node labels. Everything here is pure: the caller
passes the cached CSINode and Node dicts.

Retries must send the identical request, so what was looked up for a PVC (keys, the selected
node's labels, the aggregated terms) is returned as a :class:`TopologyPin` and fed back on the
next attempt; :class:`TopologyPins` keeps them per PVC UID in memory, and the journal record
(:mod:`~csi_sidecars.provisioner.journal.intent`) keeps the requirement across restarts. Unlike
Go, the immediate-binding CSINode is derived from the PVC UID, not random: same inputs, same
requirement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import labels_of, spec
from csi_sidecars.provisioner.decide.states import ProvisionError, ProvisioningState
from csi_sidecars.provisioner.decide.strings import go_list, go_map, go_quote

#: One topology segment: sorted (key, value) pairs, AND-ed.
Term = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TopologyRequirement:
    """The CSI ``TopologyRequirement`` as plain data (terms are sorted by key)."""

    requisite: tuple[Term, ...]
    preferred: tuple[Term, ...]

    def to_proto(self) -> csi_pb2.TopologyRequirement:
        """The protobuf message for CreateVolumeRequest.accessibility_requirements."""
        return csi_pb2.TopologyRequirement(
            requisite=[csi_pb2.Topology(segments=dict(t)) for t in self.requisite if t],
            preferred=[csi_pb2.Topology(segments=dict(t)) for t in self.preferred if t],
        )

    @classmethod
    def from_proto(cls, msg: csi_pb2.TopologyRequirement) -> TopologyRequirement:
        """Read a requirement back from its protobuf message."""
        return cls(
            requisite=tuple(make_term(t.segments) for t in msg.requisite),
            preferred=tuple(make_term(t.segments) for t in msg.preferred),
        )


@dataclass(frozen=True)
class TopologyPin:
    """What was looked up for one PVC, reused on retries so the request stays identical."""

    topology_keys: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()
    requisite_terms: tuple[Term, ...] = ()


class TopologyPins:
    """Per-PVC-UID pins in memory. Drop the pin when provisioning succeeds, fails for good
    (``Finished``) or is rescheduled, as Go does."""

    def __init__(self) -> None:
        self._pins: dict[str, TopologyPin] = {}

    def get(self, pvc_uid: str) -> TopologyPin | None:
        """The pin of a PVC, if any."""
        return self._pins.get(pvc_uid)

    def put(self, pvc_uid: str, pin: TopologyPin) -> None:
        """Store (replace) the pin of a PVC."""
        self._pins[pvc_uid] = pin

    def drop(self, pvc_uid: str) -> None:
        """Forget the pin of a PVC (no error if absent)."""
        self._pins.pop(pvc_uid, None)

    def __len__(self) -> int:
        return len(self._pins)


class _TopologyError(Exception):
    """A requirement cannot be computed (the message is Go's)."""


def make_term(segments: Mapping[str, str] | Iterable[tuple[str, str]]) -> Term:
    """A term from segments, sorted by key then value."""
    items = segments.items() if isinstance(segments, Mapping) else segments
    return tuple(sorted((str(k), str(v)) for k, v in items))


def go_term(term: Term) -> str:
    """A term as Go's ``%v`` prints it: ``[{zone z1} {rack r1}]``."""
    return "[" + " ".join(f"{{{k} {v}}}" for k, v in term) + "]"


def go_terms(terms: Iterable[Term]) -> str:
    """A list of terms as Go's ``%v`` prints it."""
    return "[" + " ".join(go_term(t) for t in terms) + "]"


def _term_sort_key(term: Term) -> tuple[int, Term]:
    return (len(term), term)


def is_subset(term: Term, other: Term) -> bool:
    """Whether every segment of ``term`` is in ``other`` (both sorted; Go ``subset``)."""
    if not term:
        return True
    j = 0
    for key, value in other:
        k1, v1 = term[j]
        if k1 != key:
            continue
        if v1 != value:
            return False
        j += 1
        if j == len(term):
            return True
    return False


def flatten(allowed_topologies: Sequence[Mapping[str, Any]] | None) -> list[Term]:
    """Flatten StorageClass ``allowedTopologies`` into OR-ed terms (cross product per term)."""
    final: list[Term] = []
    for selector_term in allowed_topologies or []:
        old: list[list[tuple[str, str]]] = []
        for expr in selector_term.get("matchLabelExpressions") or []:
            key = str(expr.get("key", ""))
            new: list[list[tuple[str, str]]] = []
            for value in expr.get("values") or []:
                if not old:
                    new.append([(key, str(value))])
                else:
                    new.extend([*o, (key, str(value))] for o in old)
            old = new
        final.extend(make_term(t) for t in old)
    return final


def fnv32(data: bytes) -> int:
    """FNV-1 32-bit hash (Go ``hash/fnv.New32``)."""
    h = 0x811C9DC5
    for byte in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= byte
    return h


def pvc_name_hash_and_index(pvc_name: str, pvc_uid: str = "") -> tuple[int, int]:
    """StatefulSet spreading: hash of the set name and the ordinal of ``claim-set-N``.

    Same as Go (and the in-tree volume util) except for an empty name, where Go picks a random
    hash and we hash the UID so the result is deterministic.
    """
    if not pvc_name:
        return fnv32(pvc_uid.encode()), 0
    hash_string = pvc_name
    index = 0
    dash = pvc_name.rfind("-")
    if dash != -1:
        suffix = pvc_name[dash + 1 :]
        if suffix.isascii() and suffix.isdigit() and int(suffix) < 2**32:
            index = int(suffix)
            hash_string = pvc_name[:dash]
            inner = hash_string.rfind("-")
            if inner != -1:
                hash_string = hash_string[inner + 1 :]
    return fnv32(hash_string.encode()), index


def driver_topology_keys(csinode: Mapping[str, Any] | None, driver: str) -> tuple[str, ...]:
    """The ``topologyKeys`` the driver registered on a CSINode (empty when none)."""
    for entry in spec(csinode).get("drivers") or []:
        if isinstance(entry, dict) and entry.get("name") == driver:
            return tuple(str(k) for k in entry.get("topologyKeys") or [])
    return ()


def _extract(node_labels: Mapping[str, str], topology_keys: Sequence[str]) -> Term | None:
    if any(k not in node_labels for k in topology_keys):
        return None
    return make_term((k, node_labels[k]) for k in topology_keys)


def _aggregate(
    *,
    driver: str,
    pvc_uid: str,
    selected: str,
    selected_keys: tuple[str, ...],
    csinodes: Mapping[str, Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
    pin: TopologyPin,
) -> tuple[list[Term], TopologyPin]:
    if not selected:
        topology_keys = pin.topology_keys
        if not topology_keys:
            named = sorted((n, driver_topology_keys(c, driver)) for n, c in csinodes.items())
            candidates = [k for _, k in named if k]
            if candidates:
                topology_keys = candidates[fnv32(pvc_uid.encode()) % len(candidates)]
                pin = dataclasses.replace(pin, topology_keys=topology_keys)
        if not topology_keys:
            return [], pin
    else:
        topology_keys = selected_keys
        if not topology_keys:
            raise _TopologyError(f"no topology key found on CSINode {selected}")
    terms = list(pin.requisite_terms)
    if not terms:
        for node in nodes.values():
            term = _extract(labels_of(node), topology_keys)
            if term:
                terms.append(term)
        if not terms:
            raise _TopologyError(
                f"topologyKeys {go_list(topology_keys)} were not found on any nodes"
            )
        pin = dataclasses.replace(pin, requisite_terms=tuple(terms))
    return terms, pin


def accessibility_requirements(
    *,
    driver: str,
    pvc_uid: str,
    pvc_name: str,
    allowed_topologies: Sequence[Mapping[str, Any]] | None,
    selected_node: str,
    strict: bool,
    immediate: bool,
    csinodes: Mapping[str, Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
    pin: TopologyPin | None = None,
) -> tuple[TopologyRequirement | None, TopologyPin]:
    """Compute the accessibility requirement of a CreateVolume request.

    Args:
        driver: the CSI driver name.
        pvc_uid: the PVC UID (pins and deterministic choices).
        pvc_name: the PVC name (StatefulSet spreading).
        allowed_topologies: the StorageClass ``allowedTopologies``.
        selected_node: the scheduler's node ("" for immediate binding).
        strict: ``--strict-topology``.
        immediate: ``--immediate-topology``.
        csinodes: cached CSINodes by name.
        nodes: cached Nodes by name.
        pin: the pin returned by the previous attempt for this PVC.

    Returns:
        The requirement (None = no requirement) and the pin to keep for the next attempt.

    Raises:
        ProvisionError: ``Reschedule`` when the selected node's CSINode or Node is missing;
            ``NoChange`` with ``error generating accessibility requirements: ...`` otherwise.
    """
    try:
        return _requirements(
            driver=driver,
            pvc_uid=pvc_uid,
            pvc_name=pvc_name,
            allowed_topologies=allowed_topologies,
            selected=selected_node,
            strict=strict,
            immediate=immediate,
            csinodes=csinodes,
            nodes=nodes,
            pin=pin or TopologyPin(),
        )
    except _TopologyError as err:
        raise ProvisionError(
            f"error generating accessibility requirements: {err}", ProvisioningState.NO_CHANGE
        ) from None


def _requirements(
    *,
    driver: str,
    pvc_uid: str,
    pvc_name: str,
    allowed_topologies: Sequence[Mapping[str, Any]] | None,
    selected: str,
    strict: bool,
    immediate: bool,
    csinodes: Mapping[str, Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
    pin: TopologyPin,
) -> tuple[TopologyRequirement | None, TopologyPin]:
    selected_term: Term = ()
    topology_keys: tuple[str, ...] = ()
    requisite: list[Term] = []
    if selected:
        topology_keys = pin.topology_keys
        if not topology_keys:
            csinode = csinodes.get(selected)
            if csinode is None:
                raise ProvisionError(
                    f"failed to get selected CSINode {selected}: "
                    f'csinode.storage.k8s.io "{selected}" not found',
                    ProvisioningState.RESCHEDULE,
                )
            topology_keys = driver_topology_keys(csinode, driver)
            if topology_keys:
                pin = dataclasses.replace(pin, topology_keys=topology_keys)
        if not topology_keys:
            raise _TopologyError(f"no topology key found for node {selected}")
        term = _extract(dict(pin.node_labels), topology_keys) if pin.node_labels else None
        if term is None:
            node = nodes.get(selected)
            if node is None:
                raise ProvisionError(
                    f'failed to get selected Node {selected}: node "{selected}" not found',
                    ProvisioningState.RESCHEDULE,
                )
            node_labels = dict(labels_of(node))
            if node_labels:
                pin = dataclasses.replace(pin, node_labels=tuple(sorted(node_labels.items())))
            term = _extract(node_labels, topology_keys)
            if term is None:
                raise _TopologyError(
                    f"topology labels from selected node {go_map(node_labels)} does not match "
                    f"topology keys from CSINode {go_list(topology_keys)}"
                )
        selected_term = term
        if strict:
            if allowed_topologies:
                flat = flatten(allowed_topologies)
                if not any(is_subset(t, selected_term) for t in flat):
                    raise _TopologyError(
                        f"selected node '{go_quote(selected)}' topology "
                        f"'{go_term(selected_term)}' is not in allowed topologies: "
                        f"{go_terms(flat)}"
                    )
            requisite = [selected_term]

    if not requisite:
        if allowed_topologies:
            requisite = flatten(allowed_topologies)
        else:
            if not selected and not immediate:
                return None, pin
            requisite, pin = _aggregate(
                driver=driver,
                pvc_uid=pvc_uid,
                selected=selected,
                selected_keys=topology_keys,
                csinodes=csinodes,
                nodes=nodes,
                pin=pin,
            )
            if not requisite:
                raise _TopologyError("no available topology found")
    if not requisite:
        return None, pin

    requisite = sorted(set(requisite), key=_term_sort_key)
    if not selected:
        hash_value, index = pvc_name_hash_and_index(pvc_name, pvc_uid)
        start = ((hash_value + index) & 0xFFFFFFFF) % len(requisite)
        preferred = requisite[start:] + requisite[:start]
    elif strict:
        preferred = list(requisite)
    else:
        for i, term in enumerate(requisite):
            if is_subset(term, selected_term):
                preferred = requisite[i:] + requisite[:i]
                break
        else:
            raise _TopologyError(
                f"topology {go_term(selected_term)} from selected node {go_quote(selected)} is "
                f"not in requisite: {go_terms(requisite)}"
            )
    return TopologyRequirement(tuple(requisite), tuple(preferred)), pin


def pinned_requirement_allowed(
    requirement: TopologyRequirement,
    *,
    allowed_topologies: Sequence[Mapping[str, Any]] | None,
    strict: bool,
) -> bool:
    """Whether a requirement read back from a journal record is still acceptable.

    The record is user-editable, so a pinned requirement is reused only if it is well formed
    (preferred is a permutation of requisite), every requisite term lies inside the StorageClass
    ``allowedTopologies`` (when set) and, with ``--strict-topology``, it names one segment.
    """
    requisite = requirement.requisite
    if not requisite or not all(requisite) or sorted(requisite) != sorted(requirement.preferred):
        return False
    if strict and len(requisite) != 1:
        return False
    if allowed_topologies:
        flat = flatten(allowed_topologies)
        return all(any(is_subset(a, t) for a in flat) for t in requisite)
    return True


def volume_node_affinity(accessible_topology: Iterable[csi_pb2.Topology]) -> dict[str, Any] | None:
    """PV ``spec.nodeAffinity`` from CreateVolume's ``accessible_topology``.

    One node selector term per topology, one ``In`` expression with a single value per segment
    (keys sorted, so the PV is deterministic). None when there is no non-empty topology (Go
    writes an affinity without terms in that corner, which the API server rejects).
    """
    terms = []
    for topology in accessible_topology:
        if not topology.segments:
            continue
        terms.append(
            {
                "matchExpressions": [
                    {"key": k, "operator": "In", "values": [v]}
                    for k, v in sorted(topology.segments.items())
                ]
            }
        )
    if not terms:
        return None
    return {"required": {"nodeSelectorTerms": terms}}
