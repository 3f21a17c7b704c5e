"""Where a volume can go: StorageClass ``allowedTopologies``, driver topology keys, capacity.

Pure helpers of the claim checker. A node can hold a new volume of a driver when its CSINode
lists the driver, it carries every topology key the driver reports as a label, and its labels
satisfy one of the StorageClass's ``allowedTopologies`` terms. With ``storageCapacity: true`` in
the CSIDriver the scheduler also needs a CSIStorageCapacity of the class with room for the claim
(``maximumVolumeSize`` when set, else ``capacity``), as kube-scheduler's volume binding does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from csi_sidecars.doctor.common import registered_nodes, topology_mismatch
from csi_sidecars.doctor.report import Evidence, fail, info, ok, warn
from csi_sidecars.doctor.snapshot import CAPACITY, CSI_DRIVER, NODE, ClusterSnapshot
from csi_sidecars.kube.objects import labels_of, name, spec
from csi_sidecars.kube.quantity import QuantityError, format_binary_si, quantity_to_bytes


def quantity(value: Any) -> int | None:
    """Bytes of a quantity, or None when absent or malformed."""
    if value is None:
        return None
    try:
        return quantity_to_bytes(str(value))
    except QuantityError:
        return None


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expr in term.get("matchLabelExpressions") or []:
        if not isinstance(expr, dict):
            return False
        key = expr.get("key")
        if not isinstance(key, str) or labels.get(key) not in (expr.get("values") or []):
            return False
    return True


def allowed(terms: Sequence[Any], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy one of the ``allowedTopologies`` terms (all when none)."""
    if not terms:
        return True
    return any(isinstance(t, dict) and _term_matches(t, labels) for t in terms)


def describe_terms(terms: Sequence[Any]) -> str:
    """``zone in (a, b)`` for each term, joined by ``or``."""
    parts = []
    for term in terms:
        exprs = [
            f"{e.get('key')} in ({', '.join(str(v) for v in e.get('values') or [])})"
            for e in (term.get("matchLabelExpressions") or [] if isinstance(term, dict) else [])
            if isinstance(e, dict)
        ]
        parts.append(" and ".join(exprs) or "(empty term)")
    return " or ".join(parts)


def usable_nodes(
    snap: ClusterSnapshot, storage_class: Mapping[str, Any], driver: str
) -> tuple[list[Evidence], list[str], bool]:
    """Which nodes can hold a volume of the class.

    Returns:
        Evidence, the usable node names, and whether the check could judge at all (False when
        no node registers the driver: a controller-only driver needs no node).
    """
    registered = registered_nodes(snap, driver)
    if not registered:
        return [], [], False
    terms = storage_class.get("allowedTopologies") or []
    usable: list[str] = []
    unlabelled: dict[str, list[str]] = {}
    for node_name in registered:
        node = snap.get(NODE, node_name)
        if node is None:
            continue
        lacking = topology_mismatch(snap, node_name, driver)
        if lacking:
            unlabelled[node_name] = lacking
            continue
        if allowed(terms, labels_of(node)):
            usable.append(node_name)
    out: list[Evidence] = []
    for node_name, keys in sorted(unlabelled.items())[:3]:
        out.append(
            warn(
                "topology",
                f"node {node_name} lacks the driver's topology labels {', '.join(keys)} "
                f"(the CSINode lists them as topologyKeys)",
            )
        )
    shown = ", ".join(usable[:5]) + (", ..." if len(usable) > 5 else "")
    if terms:
        if usable:
            out.append(
                ok(
                    "topology",
                    f"allowedTopologies ({describe_terms(terms)}) match {len(usable)} node(s) "
                    f"with the driver: {shown}",
                )
            )
        else:
            out.append(
                fail(
                    "topology",
                    f"no node that registers {driver} matches allowedTopologies "
                    f"({describe_terms(terms)})",
                )
            )
    elif unlabelled and not usable:
        out.append(fail("topology", f"no node that registers {driver} has its topology labels"))
    return out, usable, True


def capacity_check(
    snap: ClusterSnapshot, storage_class: Mapping[str, Any], driver: str, request: int | None
) -> tuple[list[Evidence], bool]:
    """Whether published capacity leaves room for a claim of ``request`` bytes.

    Returns:
        Evidence, and False only when the driver publishes capacity and none fits.
    """
    csidriver = snap.get(CSI_DRIVER, driver)
    if csidriver is None or not spec(csidriver).get("storageCapacity"):
        return [], True
    class_name = name(storage_class)
    if not snap.readable(CAPACITY):
        reason = snap.unavailable[CAPACITY]
        return [info("capacity", f"CSIStorageCapacity could not be read ({reason})")], True
    objs = [c for c in snap.items(CAPACITY) if c.get("storageClassName") == class_name]
    if not objs:
        return [
            fail(
                "capacity",
                f"CSIDriver {driver} has storageCapacity: true but no CSIStorageCapacity exists "
                f"for class {class_name}, so the scheduler finds no node with room (does the "
                f"provisioner run with --enable-capacity?)",
            )
        ], False
    sizes = [_room(c) for c in objs]
    known = [s for s in sizes if s is not None]
    largest = format_binary_si(max(known)) if known else "unknown"
    if request is None:
        return [
            info("capacity", f"{len(objs)} CSIStorageCapacity objects; largest {largest}")
        ], True
    wanted = format_binary_si(request)
    fits = sum(1 for s in known if s >= request)
    if fits:
        text = f"{fits} of {len(objs)} CSIStorageCapacity objects of class {class_name} have room"
        return [ok("capacity", f"{text} for {wanted}")], True
    return [
        fail(
            "capacity",
            f"none of {len(objs)} CSIStorageCapacity objects of class {class_name} has room for "
            f"{wanted} (largest: {largest})",
        )
    ], False


def _room(capacity: Mapping[str, Any]) -> int | None:
    maximum = quantity(capacity.get("maximumVolumeSize"))
    return maximum if maximum is not None else quantity(capacity.get("capacity"))
