"""The invariants a chaos run must hold at the end, as pure functions of the ledger and the world.

Each returns a :class:`~chaos.model.Result` with a few precise examples of what broke it.
:func:`check_all` runs those that apply to the features that took part (no snapshot invariant
without snapshots).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from csi_sidecars.playground.driver.requestlog import LoggedCall

from .model import PVC, SNAPSHOT, Result, Tracked, World, meta, result, spec, status
from .states import expected_states

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
    return result(len(world.volumes), bad, f"{len(world.volumes)} volumes, {len(world.pvs)} PVs")


def no_lost_volumes(world: World) -> Result:
    """Every bound PV's volume exists in the driver."""
    bound = [pv for pv in world.pvs if status(pv).get("phase") == "Bound"]
    bad = [
        f"PV {meta(pv).get('name')} is Bound but volume "
        f"{spec(pv).get('csi', {}).get('volumeHandle')} is not in the driver"
        for pv in bound
        if spec(pv).get("csi", {}).get("volumeHandle") not in world.volumes
    ]
    return result(len(bound), bad)


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
    return result(len(world.driver_snapshots), bad, note)


def no_lost_snapshots(world: World) -> Result:
    """Every ready VolumeSnapshotContent's snapshot exists in the driver."""
    ready = [c for c in world.contents if status(c).get("readyToUse")]
    bad = [
        f"content {meta(c).get('name')} is ready but snapshot {_content_handle(c)} is gone"
        for c in ready
        if _content_handle(c) not in world.driver_snapshots
    ]
    return result(len(ready), bad)


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
    return result(total, bad)


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
    return result(len(first), bad, note)


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
    return result(checked, bad)


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
    return result(len(world.vas) + len(world.publications), bad)


def no_secrets_in_logs(world: World, files: int) -> Result:
    """No secret value appears in any log file."""
    bad = [f"{path}: {count} occurrence(s)" for path, count in sorted(world.secret_hits.items())]
    return result(files, bad, f"{files} log files scanned")


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
    return result(len(world.processes), bad, note)


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
