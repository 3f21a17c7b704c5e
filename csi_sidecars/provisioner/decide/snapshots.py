"""Restoring a volume from a VolumeSnapshot: the checks, the content source and the protection.

:func:`snapshot_content_name` and :func:`snapshot_content_source` validate what the executor
read (the VolumeSnapshot and its bound VolumeSnapshotContent, by GET as Go reads them) and
return the ``volume_content_source`` (``snapshot_id`` = the content's ``status.snapshotHandle``)
or Go's error text: a missing, deleted, unbound, misbound, foreign-driver, unready, handle-less
or too large snapshot, and with ``--prevent-volume-mode-conversion`` a volume mode change the
content does not allow (``snapshot.storage.kubernetes.io/allow-volume-mode-change``). A member
of a group snapshot is an ordinary VolumeSnapshot with a bound content: nothing differs.

Protection: before CreateVolume the VolumeSnapshot gets
``provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection``
(:func:`protect_snapshot`, an Update as the Go RBAC grants ``update``; ``Forbidden`` is
tolerated as in Go). :func:`release_snapshot` removes it once no claim still needs the snapshot:
no claim restoring from it is ``Pending`` without its PV (Go's orphan sweep, but per snapshot and
as soon as a claim is bound, provisioned or deleted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import (
    JsonDict,
    annotations_of,
    finalizers,
    is_deleting,
    meta,
    name,
    namespace,
    spec,
    status,
    uid,
)
from csi_sidecars.kube.quantity import QuantityError, quantity_to_bytes
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOTS
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.decide.sources import DataSource, source_error
from csi_sidecars.provisioner.decide.states import ProvisionError, ProvisioningState
from csi_sidecars.provisioner.decide.updates import update_object

if TYPE_CHECKING:
    from csi_sidecars.provisioner.decide.request import ProvisionPlan

FINALIZER = strings.SNAPSHOT_SOURCE_FINALIZER
NO_CHANGE = ProvisioningState.NO_CHANGE


def snapshot_source_key(pvc: Mapping[str, Any]) -> str | None:
    """``namespace/name`` of the VolumeSnapshot a claim restores from, or None.

    ``dataSource`` first (the claim's namespace), else ``dataSourceRef`` (its ``namespace``
    when set), of kind VolumeSnapshot with no API group or ``snapshot.storage.k8s.io`` (the
    claims Go's orphan sweep counts).
    """
    pvc_spec = spec(pvc)
    for field, namespaced in (("dataSource", False), ("dataSourceRef", True)):
        src = pvc_spec.get(field)
        if not isinstance(src, dict) or src.get("kind") != strings.KIND_SNAPSHOT:
            continue
        if src.get("apiGroup") not in (None, "", strings.SNAPSHOT_API_GROUP):
            continue
        source_name = src.get("name")
        if not source_name:
            return None
        ns = (str(src.get("namespace") or "") if namespaced else "") or namespace(pvc)
        return f"{ns}/{source_name}"
    return None


def snapshot_content_name(source: DataSource, snapshot: Mapping[str, Any]) -> str:
    """Check the VolumeSnapshot and return the name of its bound content.

    Raises:
        ProvisionError: (NoChange) the snapshot is being deleted without our protection (a
            restore that had started keeps it), or not bound to a content yet.
    """
    if is_deleting(snapshot) and FINALIZER not in finalizers(snapshot):
        raise source_error(source, f"snapshot {source.name} is being deleted")
    content = status(snapshot).get("boundVolumeSnapshotContentName")
    if not isinstance(content, str) or not content:
        raise source_error(source, f"snapshot {source.name} not bound")
    return content


def _volume_mode_error(pvc: Mapping[str, Any], content: Mapping[str, Any], why: str) -> str:
    return (
        f"requested volume {namespace(pvc)}/{name(pvc)} modifies the mode of the source volume "
        f"but does not have permission to do so. {why}"
    )


def _check_volume_mode(pvc: Mapping[str, Any], content: Mapping[str, Any]) -> str | None:
    """Go's ``--prevent-volume-mode-conversion`` check: the error text, or None."""
    source_mode = spec(content).get("sourceVolumeMode")
    claim_mode = spec(pvc).get("volumeMode")
    if source_mode is None or claim_mode is None or source_mode == claim_mode:
        return None
    ann = strings.ANN_ALLOW_VOLUME_MODE_CHANGE
    allowed = annotations_of(content).get(ann)
    if allowed is None:
        return _volume_mode_error(
            pvc, content, f"{ann} annotation is not present on snapshotcontent {name(content)}"
        )
    value = _parse_go_bool(str(allowed))
    if value is None:
        return _volume_mode_error(
            pvc,
            content,
            f"failed to convert {ann} annotation value to boolean with error: "
            f"strconv.ParseBool: parsing {strings.go_quote(str(allowed))}: invalid syntax",
        )
    if not value:
        return _volume_mode_error(
            pvc, content, f"{ann} is set to false on snapshotcontent {name(content)}"
        )
    return None


def _parse_go_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``: None for anything it refuses."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def snapshot_content_source(
    plan: ProvisionPlan,
    pvc: Mapping[str, Any],
    sc: Mapping[str, Any],
    snapshot: Mapping[str, Any],
    content: Mapping[str, Any],
    *,
    prevent_volume_mode_conversion: bool = True,
) -> csi_pb2.VolumeContentSource:
    """Validate a restore source (Go ``getSnapshotSource``) and return its content source.

    Args:
        plan: the plan (its ``data_source`` is the VolumeSnapshot reference).
        pvc: the new claim.
        sc: its StorageClass.
        snapshot: the VolumeSnapshot (GET).
        content: its bound VolumeSnapshotContent (GET).
        prevent_volume_mode_conversion: ``--prevent-volume-mode-conversion``.

    Raises:
        ProvisionError: (NoChange) ``error getting handle for DataSource Type VolumeSnapshot by
            Name <n>: <why>``, in Go's order: misbound content, content of another driver, not
            ready, no snapshot handle, a claim smaller than ``restoreSize``, a refused volume
            mode change. A claim larger than ``restoreSize`` is fine (the driver expands).
    """
    source = plan.data_source
    if source is None:
        raise ProvisionError("no snapshot source in plan")
    content_name = name(content)
    ref = spec(content).get("volumeSnapshotRef")
    ref = ref if isinstance(ref, dict) else {}
    if (
        ref.get("uid") != uid(snapshot)
        or ref.get("namespace") != namespace(snapshot)
        or ref.get("name") != name(snapshot)
    ):
        raise source_error(
            source,
            f"snapshotcontent {content_name} for snapshot {source.name} is bound to a different "
            "snapshot",
        )
    if spec(content).get("driver") != sc.get("provisioner"):
        raise source_error(
            source,
            f"snapshotcontent {content_name} for snapshot {source.name} is not handled by CSI "
            f"driver of StorageClass {name(sc)}",
        )
    if status(snapshot).get("readyToUse") is not True:
        raise source_error(source, f"snapshot {source.name} is not Ready")
    handle = status(content).get("snapshotHandle")
    if not isinstance(handle, str):
        raise source_error(source, f"snapshot handle {source.name} is not available")
    restore = status(snapshot).get("restoreSize")
    if restore is not None:
        try:
            restore_bytes = quantity_to_bytes(str(restore))
        except QuantityError as err:
            raise source_error(
                source, f"snapshot {source.name} has an invalid restoreSize {restore!r}: {err}"
            ) from None
        requests = (spec(pvc).get("resources") or {}).get("requests") or {}
        if "storage" not in requests:
            raise source_error(
                source,
                f"error getting capacity for PVC {name(pvc)} when creating snapshot "
                f"{name(snapshot)}",
            )
        if plan.required_bytes < restore_bytes:
            raise source_error(
                source,
                f"requested volume size {plan.required_bytes} is less than the size "
                f"{restore_bytes} for the source snapshot {name(snapshot)}",
            )
    if prevent_volume_mode_conversion:
        refused = _check_volume_mode(pvc, content)
        if refused is not None:
            raise source_error(source, refused)
    return csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=handle)
    )


# -- protection -----------------------------------------------------------------------------


def _with_finalizers(obj: Mapping[str, Any], wanted: list[str]) -> JsonDict:
    return {**obj, "metadata": {**meta(obj), "finalizers": wanted}}


def with_snapshot_protection(snapshot: Mapping[str, Any]) -> JsonDict | None:
    """The VolumeSnapshot with our protection finalizer (None: it has it already)."""
    current = finalizers(snapshot)
    if FINALIZER in current:
        return None
    return _with_finalizers(snapshot, [*current, FINALIZER])


def without_snapshot_protection(snapshot: Mapping[str, Any]) -> JsonDict | None:
    """The VolumeSnapshot without our protection finalizer (None: it has none)."""
    current = finalizers(snapshot)
    if FINALIZER not in current:
        return None
    return _with_finalizers(snapshot, [f for f in current if f != FINALIZER])


@dataclass(frozen=True, slots=True)
class ProtectionForbidden(a.Done):
    """The RBAC lacks ``update`` on VolumeSnapshots: go on without the protection (as Go)."""


def protect_snapshot(snapshot: Mapping[str, Any]) -> Plan:
    """The plan adding our finalizer to ``snapshot`` before CreateVolume.

    Done when written or already there, :class:`ProtectionForbidden` (also done) without the
    permission, Retry for anything else (the provisioning attempt fails, NoChange).
    """
    return update_object(
        VOLUME_SNAPSHOTS,
        snapshot,
        with_snapshot_protection,
        forbidden=ProtectionForbidden("no permission to update volumesnapshots"),
        noun="snapshot",
    )


def protect_snapshot_source(source: DataSource) -> Plan:
    """Read the VolumeSnapshot of a restore (fresh, as Go) and protect it
    (:func:`protect_snapshot`); a snapshot that is gone meanwhile is a Retry."""

    def then(snapshot: JsonDict | None) -> Plan:
        if snapshot is None:
            return (a.Retry(f'volumesnapshots "{source.name}" not found'),)
        return protect_snapshot(snapshot)

    return (a.Read(VOLUME_SNAPSHOTS, source.name, source.namespace, then=then),)


def needs_snapshot(pvc: Mapping[str, Any]) -> bool:
    """Whether a claim restoring from a snapshot may still call CreateVolume from it: not
    bound, phase ``Pending`` (or none yet)."""
    return not spec(pvc).get("volumeName") and status(pvc).get("phase") in (None, "", "Pending")


@dataclass(frozen=True, slots=True)
class SnapshotInUse(a.Retry):
    """A claim restoring from the snapshot is still ``Pending``: look again after back-off."""


def release_snapshot(
    snapshot: Mapping[str, Any] | None,
    restoring: Iterable[Mapping[str, Any]],
    provisioned: Callable[[Mapping[str, Any]], bool],
) -> Plan:
    """The plan for one VolumeSnapshot: remove our finalizer once no claim needs it.

    Args:
        snapshot: the VolumeSnapshot as cached (None: gone).
        restoring: the claims whose data source is this snapshot.
        provisioned: whether a claim's PV is saved already (its CreateVolume is over).

    Returns:
        Done when there is nothing to do; :class:`SnapshotInUse` while a claim still needs it;
        else the Update removing the finalizer (a snapshot that is gone counts as done).
    """
    if snapshot is None or FINALIZER not in finalizers(snapshot):
        return (a.Done(),)
    pending = [c for c in restoring if needs_snapshot(c) and not provisioned(c)]
    if pending:
        return (SnapshotInUse(f"still the source of {len(pending)} pending claim(s)"),)
    return update_object(
        VOLUME_SNAPSHOTS,
        snapshot,
        without_snapshot_protection,
        missing_ok=True,
        forbidden=a.Retry("no permission to update volumesnapshots"),
        done=a.Done("removed the snapshot source protection finalizer"),
        noun="snapshot",
    )


__all__ = [
    "FINALIZER",
    "ProtectionForbidden",
    "SnapshotInUse",
    "needs_snapshot",
    "protect_snapshot",
    "protect_snapshot_source",
    "release_snapshot",
    "snapshot_content_name",
    "snapshot_content_source",
    "snapshot_source_key",
    "with_snapshot_protection",
    "without_snapshot_protection",
]
