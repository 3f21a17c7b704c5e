"""Distributed provisioning (``--node-deployment``): which claims and volumes are this node's.

One provisioner runs on every node next to the node's driver (``NODE_NAME``); each handles only:

* claims whose ``volume.kubernetes.io/selected-node`` is its node (:func:`check_node`); a claim
  selected for another node is left alone; an ``Immediate`` claim without one (with
  ``--node-deployment-immediate-binding``, and only when the StorageClass ``allowedTopologies``
  admit this node) is raced for: after a jittered exponential delay (:func:`owner_delay`:
  ``--node-deployment-base-delay`` doubling up to ``--node-deployment-max-delay``, minus a random
  part of the base delay, as Go's rate limiter with jitter) and a ``GetCapacity`` check, the
  provisioner writes its node as the selected node (:func:`with_selected_node`, a PVC Update);
  whoever wins provisions it once the update arrives;
* PVs whose node affinity admits its node's topology (:func:`volume_accessible`, Go's
  ``VolumeIsAccessible``); the others are another node's to delete.

The topology of the node comes from the driver's ``NodeGetInfo`` (:func:`static_topology`: one
CSINode and one Node, never watched).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from csi_sidecars.kube.objects import JsonDict, annotations_of, meta, spec
from csi_sidecars.provisioner.decide import strings


class NodeCheck(enum.Enum):
    """What a node's provisioner does with a claim."""

    MINE = "mine"  # selected for this node: provision it
    OTHER = "other"  # selected for another node, or not for node provisioners: leave it
    RACE = "race"  # Immediate and unselected: try to become its owner


def check_node(
    pvc: Mapping[str, Any], sc: Mapping[str, Any] | None, node: str, immediate_binding: bool
) -> NodeCheck:
    """Whether ``pvc`` is this node's (Go ``checkNode`` without the topology check)."""
    selected = str(annotations_of(pvc).get(strings.ANN_SELECTED_NODE) or "")
    if selected:
        return NodeCheck.MINE if selected == node else NodeCheck.OTHER
    if sc is None or sc.get("volumeBindingMode") != "Immediate" or not immediate_binding:
        return NodeCheck.OTHER
    return NodeCheck.RACE


def with_selected_node(pvc: Mapping[str, Any], node: str) -> JsonDict | None:
    """The claim with ``node`` as its selected node (None: some node is selected already)."""
    ann = dict(annotations_of(pvc))
    if ann.get(strings.ANN_SELECTED_NODE):
        return None
    ann[strings.ANN_SELECTED_NODE] = node
    return {**pvc, "metadata": {**meta(pvc), "annotations": ann}}


def owner_delay(failures: int, base: float, maximum: float, random: float) -> float:
    """The wait before attempt ``failures`` + 1 to own a claim.

    ``base * 2**failures`` capped at ``maximum``, minus ``random * base`` (``random`` in
    [0, 1)), never below 0: many node provisioners do not all try at the same moment.
    """
    delay: float = min(base * float(2 ** min(failures, 62)), maximum)
    return max(0.0, delay - random * base)


def static_topology(
    driver: str, node: str, node_id: str, segments: Mapping[str, str]
) -> tuple[dict[str, JsonDict], dict[str, JsonDict]]:
    """The CSINode and Node of this node as the topology code reads them, from NodeGetInfo."""
    entry: JsonDict = {"name": driver, "nodeID": node_id}
    if segments:
        entry["topologyKeys"] = sorted(segments)
    csinode = {"metadata": {"name": node}, "spec": {"drivers": [entry]}}
    node_obj = {"metadata": {"name": node, "labels": dict(segments)}}
    return {node: csinode}, {node: node_obj}


def _matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(expr.get("key") or "")
    values = [str(v) for v in expr.get("values") or []]
    op = expr.get("operator")
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def volume_accessible(pv: Mapping[str, Any], segments: Mapping[str, str] | None) -> bool:
    """Whether a PV's required node affinity admits a node with these topology labels.

    No node topology, or a PV without a required affinity, is accessible (as in Go). Terms are
    OR-ed, expressions of a term AND-ed; a term with ``matchFields`` does not match labels.
    """
    if segments is None:
        return True
    required = (spec(pv).get("nodeAffinity") or {}).get("required")
    if not isinstance(required, dict):
        return True
    for term in required.get("nodeSelectorTerms") or []:
        if not isinstance(term, dict) or term.get("matchFields"):
            continue
        exprs = term.get("matchExpressions") or []
        if exprs and all(isinstance(e, dict) and _matches(e, segments) for e in exprs):
            return True
    return False


__all__ = [
    "NodeCheck",
    "check_node",
    "owner_delay",
    "static_topology",
    "volume_accessible",
    "with_selected_node",
]
