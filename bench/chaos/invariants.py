"""The invariants a chaos run must hold at the end, as pure functions of the ledger and the world.

Each returns a :class:`~chaos.model.Result` with a few precise examples of what broke it.
:func:`check_all` runs those that apply to the features that took part (no snapshot invariant
without snapshots).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from csi_sidecars.playground.driver.options import parse_quantity
from csi_sidecars.playground.driver.requestlog import LoggedCall

from .model import POD, PVC, SNAPSHOT, Result, Tracked, World, meta, spec, status

MAX_EXAMPLES = 8

#: Mutating calls, and the request fields that say which object they act on.
MUTATING: dict[str, tuple[str, ...]] = {
    "CreateVolume": ("name",),
    "DeleteVolume": ("volume_id",),
    "ControllerPublishVolume": ("volume_id", "node_id"),
    "ControllerUnpublishVolume": ("volume_id", "node_id"),
    "ControllerExpandVolume": ("volume_id",),
    "ControllerModifyVolume": ("volume_id",),
    "CreateSnapshot": ("name",),
    "DeleteSnapshot": ("snapshot_id",),
}
#: Calls that did not run to an answer: cut short by the caller or by the driver's death.
UNFINISHED = (None, "CANCELLED")


def _result(checked: int, bad: list[str], note: str = "") -> Result:
    return Result(not bad, checked, len(bad), bad[:MAX_EXAMPLES], note)


def uid_of_name(name: str) -> str:
    """The object UID in a CSI name such as ``pvc-<uid>`` or ``snapshot-<uid>``."""
    return name.split("-", 1)[1] if "-" in name else name


def _by_uid(ledger: Iterable[Tracked], kind: str) -> dict[str, Tracked]:
    return {t.uid: t for t in ledger if t.kind == kind and t.uid}


def _owner(name: str, tracked: dict[str, Tracked]) -> str:
    t = tracked.get(uid_of_name(name))
    if t is None:
        return "not made by the workload"
    state = "deleted" if t.deleted_at is not None else "live"
    return f"{t.key} ({state}{', ' + t.note if t.note else ''})"


def _outlived(kind: str, obj: dict[str, Any], owner: str) -> str:
    phase = status(obj).get("phase")
    deleting = "deleting" if meta(obj).get("deletionTimestamp") else ""
    state = ", ".join(x for x in (phase, deleting) if x)
    return f"its {kind} {meta(obj).get('name')} outlived its {owner}" + (
        f" ({state})" if state else ""
    )


def _claim_uids(world: World) -> set[str]:
    return {str(meta(c).get("uid")) for c in world.pvcs}


def _dead_pv(pv: dict[str, Any], claims: set[str]) -> bool:
    """A PV whose claim is gone and whose volume should have been deleted with it."""
    ref = spec(pv).get("claimRef") or {}
    reclaim = spec(pv).get("persistentVolumeReclaimPolicy", "Delete")
    return bool(ref.get("uid")) and ref["uid"] not in claims and reclaim == "Delete"


def no_leaked_volumes(world: World, ledger: list[Tracked]) -> Result:
    """Every driver volume belongs to exactly one live PV.

    A PV left behind by its deleted claim (reclaim policy Delete) is not live: its volume is
    leaked as surely as one without any PV.
    """
    claims = _claim_uids(world)
    pvs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pv in world.pvs:
        pvs[spec(pv).get("csi", {}).get("volumeHandle", "")].append(pv)
    tracked = _by_uid(ledger, PVC)
    bad = []
    for vid, name in sorted(world.volumes.items()):
        mine = pvs.get(vid, [])
        if len(mine) == 1 and not _dead_pv(mine[0], claims):
            continue
        why = f"{len(mine)} PVs" if len(mine) != 1 else _outlived("PV", mine[0], "claim")
        bad.append(f"volume {vid} ({name}): {why}; claim {_owner(name, tracked)}")
    return _result(len(world.volumes), bad, f"{len(world.volumes)} volumes, {len(world.pvs)} PVs")


def no_lost_volumes(world: World) -> Result:
    """Every bound PV's volume exists in the driver."""
    bound = [pv for pv in world.pvs if status(pv).get("phase") == "Bound"]
    bad = [
        f"PV {meta(pv).get('name')} is Bound but volume "
        f"{spec(pv).get('csi', {}).get('volumeHandle')} is not in the driver"
        for pv in bound
        if spec(pv).get("csi", {}).get("volumeHandle") not in world.volumes
    ]
    return _result(len(bound), bad)


def _content_handle(vsc: dict[str, Any]) -> str | None:
    handle = status(vsc).get("snapshotHandle") or spec(vsc).get("source", {}).get("snapshotHandle")
    return str(handle) if handle else None


def _dead_content(vsc: dict[str, Any], snapshots: set[str]) -> bool:
    """A content whose VolumeSnapshot is gone and whose snapshot should have gone with it."""
    ref = spec(vsc).get("volumeSnapshotRef") or {}
    delete = spec(vsc).get("deletionPolicy", "Delete") == "Delete"
    return bool(ref.get("uid")) and ref["uid"] not in snapshots and delete


def no_leaked_snapshots(world: World, ledger: list[Tracked]) -> Result:
    """Every driver snapshot belongs to exactly one live VolumeSnapshotContent.

    A content left behind by its deleted VolumeSnapshot (deletion policy Delete) is not live.
    """
    alive = {str(meta(s).get("uid")) for s in world.snapshots}
    contents: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for c in world.contents:
        contents[_content_handle(c)].append(c)
    tracked = _by_uid(ledger, SNAPSHOT)
    bad = []
    for sid, name in sorted(world.driver_snapshots.items()):
        mine = contents.get(sid, [])
        if len(mine) == 1 and not _dead_content(mine[0], alive):
            continue
        why = (
            f"{len(mine)} contents" if len(mine) != 1 else _outlived("content", mine[0], "snapshot")
        )
        bad.append(f"snapshot {sid} ({name}): {why}; VolumeSnapshot {_owner(name, tracked)}")
    note = f"{len(world.driver_snapshots)} snapshots, {len(world.contents)} contents"
    return _result(len(world.driver_snapshots), bad, note)


def no_lost_snapshots(world: World) -> Result:
    """Every ready VolumeSnapshotContent's snapshot exists in the driver."""
    ready = [c for c in world.contents if status(c).get("readyToUse")]
    bad = [
        f"content {meta(c).get('name')} is ready but snapshot {_content_handle(c)} is gone"
        for c in ready
        if _content_handle(c) not in world.driver_snapshots
    ]
    return _result(len(ready), bad)


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


def _visible_error(t: Tracked, obj: dict[str, Any] | None, views: _Views, since: str) -> str:
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
                shown = _visible_error(ref, pvc, views, since)
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
        error = _visible_error(t, obj, views, since) if t.deleted_at is None else ""
        line = f"{t.key} [{t.note or 'plain'}]: {missing}"
        if error:
            visible.append(f"{line}; {error}")
        else:
            bad.append(line)
    out = _result(len(ledger), bad, f"{len(visible)} not reached but showing an error")
    out.examples += [f"visible error: {v}" for v in visible[: max(0, MAX_EXAMPLES - len(bad))]]
    return out


def nothing_stuck(world: World) -> Result:
    """No object is left with a deletion timestamp (held back by a finalizer)."""
    groups = {
        "pvc": world.pvcs,
        "pod": world.pods,
        "volumesnapshot": world.snapshots,
        "pv": world.pvs,
        "volumeattachment": world.vas,
        "volumesnapshotcontent": world.contents,
    }
    bad = []
    total = 0
    for kind, objs in groups.items():
        total += len(objs)
        for o in objs:
            m = meta(o)
            if m.get("deletionTimestamp"):
                where = f"{m.get('namespace')}/" if m.get("namespace") else ""
                bad.append(
                    f"{kind} {where}{m.get('name')} deleting since {m['deletionTimestamp']}, "
                    f"finalizers {m.get('finalizers')}"
                )
    return _result(total, bad)


def no_create_after_delete(calls: list[LoggedCall], ledger: list[Tracked], grace: float) -> Result:
    """No CreateVolume / CreateSnapshot was first sent after its object's delete was acked.

    Retries and clean-ups of a create that started before the delete are fine (a provisioner
    may repeat CreateVolume to learn the ID of a volume it must delete). ``grace`` seconds
    cover the moment between the acknowledgement and the watch event reaching the sidecar.
    """
    owners = {
        "CreateVolume": _by_uid(ledger, PVC),
        "CreateSnapshot": _by_uid(ledger, SNAPSHOT),
    }
    first: dict[tuple[str, str], float] = {}
    for call in calls:
        name = call.fields.get("name")
        if call.method in owners and name:
            first.setdefault((call.method, str(name)), call.started)
    bad: list[str] = []
    raced: list[float] = []
    for (method, name), started in sorted(first.items(), key=lambda kv: kv[1]):
        t = owners[method].get(uid_of_name(name))
        if t is None or t.deleted_at is None or started <= t.deleted_at:
            continue
        late = started - t.deleted_at
        if late <= grace:
            raced.append(late)
            continue
        bad.append(f"{method} {name} for {t.key} first sent {late:.1f}s after its delete")
    note = f"{len(first)} objects created; {len(raced)} within the {grace:g}s grace"
    if raced:
        note += f" (latest {max(raced):.2f}s after its delete)"
    return _result(len(first), bad, note)


def no_duplicate_operations(calls: list[LoggedCall]) -> Result:
    """No two identical mutating calls ran at the same time (two actors on one object)."""
    by_key: dict[tuple[str, ...], list[LoggedCall]] = defaultdict(list)
    for call in calls:
        keys = MUTATING.get(call.method)
        if keys is None or call.code in UNFINISHED or call.finished is None:
            continue
        by_key[(call.method, *(str(call.fields.get(k, "")) for k in keys))].append(call)
    bad: list[str] = []
    checked = 0
    for key, group in by_key.items():
        checked += len(group)
        group.sort(key=lambda c: c.started)
        busy_until = 0.0
        for call in group:
            assert call.finished is not None
            if call.started < busy_until:
                bad.append(
                    f"{' '.join(key)}: overlapping calls (one started at {call.started:.3f} "
                    f"while another ran until {busy_until:.3f}, {call.code})"
                )
            busy_until = max(busy_until, call.finished)
    return _result(checked, bad)


def attachments_match(world: World) -> Result:
    """Driver publications, attached VolumeAttachments and scheduled pods agree."""
    handle_of = {
        meta(pv).get("name"): spec(pv).get("csi", {}).get("volumeHandle") for pv in world.pvs
    }
    attached = {
        (
            handle_of.get(spec(va).get("source", {}).get("persistentVolumeName")),
            spec(va).get("nodeName"),
        )
        for va in world.vas
        if status(va).get("attached")
    }
    claims = {(meta(p).get("namespace"), meta(p).get("name")): p for p in world.pvcs}
    used = set()
    for pod in world.pods:
        node = spec(pod).get("nodeName")
        for vol in spec(pod).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            pvc = claims.get((meta(pod).get("namespace"), claim))
            if node and pvc and spec(pvc).get("volumeName"):
                used.add((spec(pvc)["volumeName"], node))
    bad = [
        f"driver publishes {v} on {n} with no attached VolumeAttachment"
        for v, n in sorted(world.publications - attached, key=str)
    ]
    bad += [
        f"VolumeAttachment says {v} is attached on {n}, the driver disagrees"
        for v, n in sorted(attached - world.publications, key=str)
    ]
    for va in world.vas:
        key = (spec(va).get("source", {}).get("persistentVolumeName"), spec(va).get("nodeName"))
        if key not in used:
            bad.append(
                f"VolumeAttachment {meta(va).get('name')} of {key[0]} on {key[1]}: no pod uses it"
            )
    return _result(len(world.vas) + len(world.publications), bad)


def no_secrets_in_logs(world: World, files: int) -> Result:
    """No secret value appears in any log file."""
    bad = [f"{path}: {count} occurrence(s)" for path, count in sorted(world.secret_hits.items())]
    return _result(files, bad, f"{files} log files scanned")


def processes_healthy(world: World) -> Result:
    """Every process that should run runs and answers its health check."""
    bad = [
        f"{p.name} ({p.role}, {p.impl}): {'not running' if not p.running else 'unhealthy'}"
        f"{' - ' + p.detail if p.detail else ''}"
        for p in world.processes
        if not (p.running and p.healthy)
    ]
    restarts = sum(p.restarts for p in world.processes)
    codes = Counter(code for p in world.processes for code in p.exits)
    exits = ", ".join(f"{n}x {code}" for code, n in sorted(codes.items()))
    note = f"{restarts} restarts by the supervisor" + (f" (exit codes: {exits})" if exits else "")
    return _result(len(world.processes), bad, note)


def check_all(
    world: World,
    ledger: list[Tracked],
    features: list[str],
    *,
    since: str,
    grace: float,
    log_files: int,
) -> dict[str, Result]:
    """Every invariant that applies to ``features``, in report order."""
    out = {
        "no-leaked-volumes": no_leaked_volumes(world, ledger),
        "no-lost-volumes": no_lost_volumes(world),
    }
    if "snapshot" in features:
        out["no-leaked-snapshots"] = no_leaked_snapshots(world, ledger)
        out["no-lost-snapshots"] = no_lost_snapshots(world)
    out["expected-states"] = expected_states(world, ledger, since)
    out["nothing-stuck"] = nothing_stuck(world)
    out["no-create-after-delete"] = no_create_after_delete(world.calls, ledger, grace)
    out["no-duplicate-operations"] = no_duplicate_operations(world.calls)
    if "attach" in features:
        out["attachments-match"] = attachments_match(world)
    out["no-secrets-in-logs"] = no_secrets_in_logs(world, log_files)
    out["processes-healthy"] = processes_healthy(world)
    return out
