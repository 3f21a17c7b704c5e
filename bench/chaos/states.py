"""The expected-states invariant: every object of the ledger reached its end state, or shows
an error the user can see.

A claim should be Bound (expanded to its new size, in its new VolumeAttributesClass), a pod
scheduled with its volumes attached, a snapshot ready; a deleted object should be gone, and its
PV or content with it. An object that did not get there passes only when it shows why: a status
error, or its latest Warning event when that is current (see :func:`visible_error`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from csi_sidecars.playground.driver.options import parse_quantity

from .model import (
    MAX_EXAMPLES,
    POD,
    PVC,
    SNAPSHOT,
    Result,
    Tracked,
    World,
    meta,
    result,
    spec,
    status,
)


def _index(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(meta(o).get("namespace", ""), meta(o).get("name", "")): o for o in objs}


def _bytes(text: Any) -> int:
    try:
        return parse_quantity(str(text))
    except ValueError:
        return 0


class _Views:
    """Lookups over the world that the state checks share."""

    def __init__(self, world: World) -> None:
        self.pvcs = _index(world.pvcs)
        self.pods = _index(world.pods)
        self.snapshots = _index(world.snapshots)
        self.pv_by_claim = {
            spec(pv).get("claimRef", {}).get("uid"): pv for pv in world.pvs if spec(pv)
        }
        self.vas = {
            (spec(va).get("source", {}).get("persistentVolumeName"), spec(va).get("nodeName")): va
            for va in world.vas
        }
        self.contents_by_snapshot = {
            spec(c).get("volumeSnapshotRef", {}).get("uid"): c for c in world.contents
        }
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for ev in world.events:
            self.events[ev.get("involvedObject", {}).get("uid", "")].append(ev)

    def live(self, t: Tracked) -> dict[str, Any] | None:
        table = {PVC: self.pvcs, POD: self.pods, SNAPSHOT: self.snapshots}[t.kind]
        obj = table.get((t.namespace, t.name))
        if obj is None or (t.uid and meta(obj).get("uid") != t.uid):
            return None
        return obj


def _event_time(ev: dict[str, Any]) -> str:
    return str(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or "")


#: Words of errors that the faults cause (injected driver errors, lost connections, timeouts).
TRANSIENT_MARKERS = (
    "injected",
    "chaos",
    "deadline",
    "unavailable",
    "connection",
    "eof",
    "timeout",
    "timed out",
    "canceled",
    "cancelled",
    "aborted",
    "resource_exhausted",
    "resourceexhausted",
    "internal",
    "the object has been modified",
    "not found",
)


def _transient(message: str) -> bool:
    low = message.lower()
    return any(m in low for m in TRANSIENT_MARKERS)


def visible_error(t: Tracked, obj: dict[str, Any] | None, views: _Views, since: str) -> str:
    """The error a user sees on the object now: a status error, or its latest Warning event.

    Only Warning events are listed (``World.events``); the latest one counts when it came
    during the settle window or does not look like an echo of an injected fault.
    """
    if obj is not None:
        err = status(obj).get("error") or {}
        if err.get("message"):
            return f"status.error: {err['message']}"
    events = views.events.get(t.uid, [])
    if events:
        last = max(events, key=_event_time)
        # The latest Warning counts when it is recent, or when it is not an echo of a fault
        # of the chaos window (those are transient: a sidecar that still retries repeats them).
        if _event_time(last) >= since or not _transient(str(last.get("message", ""))):
            return f"event {last.get('reason')}: {str(last.get('message', ''))[:160]}"
    if t.kind == POD:
        # A pod waits for its claims: the error on a claim is the one the user reads.
        for claim in t.claims:
            pvc = views.pvcs.get((t.namespace, claim))
            if pvc is not None and status(pvc).get("phase") != "Bound":
                ref = Tracked(PVC, t.namespace, claim, str(meta(pvc).get("uid", "")))
                shown = visible_error(ref, pvc, views, since)
                if shown:
                    return f"claim {claim} shows {shown}"
    return ""


def _missing(t: Tracked, obj: dict[str, Any] | None, views: _Views) -> str:
    """What the object lacks to be in its expected state ("" when it is)."""
    if t.deleted_at is not None:
        if obj is not None:
            return f"still exists (finalizers {meta(obj).get('finalizers')})"
        if t.kind == PVC and t.uid in views.pv_by_claim:
            pv = views.pv_by_claim[t.uid]
            return f"deleted, but PV {meta(pv).get('name')} remains ({status(pv).get('phase')})"
        if t.kind == SNAPSHOT and t.uid in views.contents_by_snapshot:
            return (
                f"deleted, but content {meta(views.contents_by_snapshot[t.uid]).get('name')} "
                "remains"
            )
        return ""
    if obj is None:
        return "gone"
    st = status(obj)
    if t.kind == PVC:
        if st.get("phase") != "Bound":
            return f"phase {st.get('phase')}"
        if "size" in t.want and _bytes(st.get("capacity", {}).get("storage")) < t.want["size"]:
            return f"capacity {st.get('capacity', {}).get('storage')} < {t.want['size']} bytes"
        if "vac" in t.want and st.get("currentVolumeAttributesClassName") != t.want["vac"]:
            return (
                f"volumeAttributesClass {st.get('currentVolumeAttributesClassName')} "
                f"!= {t.want['vac']} ({st.get('modifyVolumeStatus')})"
            )
        return ""
    if t.kind == POD:
        node = spec(obj).get("nodeName")
        if not node:
            return "not scheduled"
        if t.want.get("attached"):
            for claim in t.claims:
                pvc = views.pvcs.get((t.namespace, claim))
                pv_name = spec(pvc).get("volumeName") if pvc else None
                va = views.vas.get((pv_name, node))
                if va is None or not status(va).get("attached"):
                    return f"volume of {claim} not attached on {node} (VA {va is not None})"
        return ""
    if not st.get("readyToUse"):
        return f"not ready ({st.get('error')})"
    return ""


def expected_states(world: World, ledger: list[Tracked], since: str) -> Result:
    """Every object reached its expected state, or carries an error the user can see now.

    ``since`` (RFC 3339) is when the settle window began: only events from then on count as
    an error the user sees now.
    """
    views = _Views(world)
    bad: list[str] = []
    visible: list[str] = []
    for t in ledger:
        obj = views.live(t)
        missing = _missing(t, obj, views)
        if not missing:
            continue
        error = visible_error(t, obj, views, since) if t.deleted_at is None else ""
        line = f"{t.key} [{t.note or 'plain'}]: {missing}"
        if error:
            visible.append(f"{line}; {error}")
        else:
            bad.append(line)
    out = result(len(ledger), bad, f"{len(visible)} not reached but showing an error")
    out.examples += [f"visible error: {v}" for v in visible[: max(0, MAX_EXAMPLES - len(bad))]]
    return out
