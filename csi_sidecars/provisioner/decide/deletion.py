"""Deletion decisions for PersistentVolumes (sig-lib ``syncVolume`` + csi ``Delete``), as plans.

* :func:`owns_volume`: which PVs this provisioner manages (by ``pv.kubernetes.io/provisioned-by``
  or ``migrated-to``; statically created CSI PVs of our driver too).
* :func:`protection_finalizers`: add ``external-provisioner.volume.kubernetes.io/finalizer`` to
  Bound PVs with reclaim ``Delete``; remove it for ``Retain``/``Recycle``.
* :func:`should_delete`: Released + reclaim Delete, and not already finished.
* :func:`deletion_secret`: which Secret DeleteVolume uses (PV annotations first, StorageClass
  fallback for PVs from old provisioners).
* :func:`attachment_blocker`: refuse while a VolumeAttachment still references the PV.
* :func:`build_delete_request`; success (including ``NotFound``) is judged by
  :func:`~csi_sidecars.provisioner.decide.states.delete_volume_succeeded`.

:func:`volume_plan` puts them together into the complete actions of one PV sync, for the one
executor (:class:`csi_sidecars.controller.perform.Performer`): the finalizer patch, or the
Secret read, DeleteVolume, the PV delete and the finalizer removal, each step a continuation of
the answer before it. Finalizer patches are guarded JSON patches (:mod:`csi_sidecars.kube.patch`);
a conflict re-reads the PV and decides again. The outcome says what happened, typed
(:class:`VolumeDeleted`, :class:`DeleteFailed`, :class:`FinalizerPending`), for the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.csi.codes import error_code, format_error
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import (
    JsonDict,
    SecretError,
    annotations_of,
    finalizers,
    is_deleting,
    name,
    secret_data,
    spec,
    status,
    str_map,
    uid,
)
from csi_sidecars.kube.patch import add_finalizer_patch, is_conflict, remove_finalizer_patch
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, SECRETS, ApiError
from csi_sidecars.provisioner.decide import events, secrets, strings
from csi_sidecars.provisioner.decide.secrets import SecretParamError, SecretRef
from csi_sidecars.provisioner.decide.states import delete_volume_succeeded
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

PV = PERSISTENT_VOLUMES
#: JSON patches of our finalizer tried (each after re-reading the PV) before giving up.
PATCH_ATTEMPTS = 5


class DeleteError(Exception):
    """Deletion cannot proceed now; the text becomes the ``VolumeFailedDelete`` event."""


def owns_volume(pv: Mapping[str, Any], known_names: Collection[str]) -> bool:
    """Whether this provisioner is responsible for ``pv``.

    With ``pv.kubernetes.io/provisioned-by``: that annotation or ``pv.kubernetes.io/migrated-to``
    must be a known name. Without it: a CSI PV of a known driver, or a known ``migrated-to``.
    """
    ann = annotations_of(pv)
    migrated_to = ann.get(strings.ANN_MIGRATED_TO, "")
    if strings.ANN_PROVISIONED_BY in ann:
        return ann[strings.ANN_PROVISIONED_BY] in known_names or migrated_to in known_names
    csi = spec(pv).get("csi")
    if isinstance(csi, dict):
        return csi.get("driver") in known_names
    return migrated_to in known_names


def protection_finalizers(pv: Mapping[str, Any]) -> list[str] | None:
    """The new ``metadata.finalizers`` of a PV we own, or None when nothing changes.

    Adds the provisioner finalizer to a Bound, not-deleting PV with reclaim ``Delete``; removes
    it when the policy is ``Retain`` or ``Recycle``.
    """
    current = finalizers(pv)
    policy = spec(pv).get("persistentVolumeReclaimPolicy")
    if (
        policy == "Delete"
        and not is_deleting(pv)
        and status(pv).get("phase") == "Bound"
        and strings.PV_FINALIZER not in current
    ):
        return [*current, strings.PV_FINALIZER]
    if policy in ("Retain", "Recycle") and strings.PV_FINALIZER in current:
        return [f for f in current if f != strings.PV_FINALIZER]
    return None


def should_delete(pv: Mapping[str, Any]) -> bool:
    """Whether the volume behind ``pv`` should be deleted now.

    Released, reclaim ``Delete``, and either not being deleted or still carrying our finalizer
    (a Released PV deleted by a user still gets its volume deleted).
    """
    if is_deleting(pv) and strings.PV_FINALIZER not in finalizers(pv):
        return False
    return (
        status(pv).get("phase") == "Released"
        and spec(pv).get("persistentVolumeReclaimPolicy") == "Delete"
    )


def volume_handle(pv: Mapping[str, Any]) -> str:
    """``spec.csi.volumeHandle``.

    Raises:
        DeleteError: ``invalid CSI PV`` when the PV has no CSI source or handle.
    """
    csi = spec(pv).get("csi")
    if not isinstance(csi, dict) or not csi.get("volumeHandle"):
        raise DeleteError("invalid CSI PV")
    return str(csi["volumeHandle"])


@dataclass(frozen=True)
class DeletionSecret:
    """Which Secret DeleteVolume uses: ``ref`` (None = no secrets) and where it came from."""

    ref: SecretRef | None
    source: str  # "annotations", "storageclass", "none"


def pv_class(pv: Mapping[str, Any]) -> str:
    """The PV's StorageClass: beta annotation first, then ``spec.storageClassName``."""
    ann = annotations_of(pv)
    if strings.ANN_BETA_STORAGE_CLASS in ann:
        return str(ann[strings.ANN_BETA_STORAGE_CLASS])
    return str(spec(pv).get("storageClassName") or "")


def deletion_secret(pv: Mapping[str, Any], sc: Mapping[str, Any] | None) -> DeletionSecret:
    """Resolve the DeleteVolume secret (Go ``handleSecretsForDeletion``).

    Both deletion annotations present: non-empty -> that Secret, empty -> none (one empty and
    one not -> none, as in Go). Annotations absent (PV from an old provisioner): resolve the
    StorageClass ``provisioner-secret`` templates with the claimRef's name/namespace (no PVC
    annotations); no class name, class gone, or no claimRef -> none. A failed GET of the Secret
    must not stop the deletion (the executor proceeds without secrets).

    Raises:
        DeleteError: the StorageClass templates cannot be resolved.
    """
    ann = annotations_of(pv)
    if strings.ANN_DELETION_SECRET_NAME in ann and strings.ANN_DELETION_SECRET_NAMESPACE in ann:
        secret_name = ann[strings.ANN_DELETION_SECRET_NAME]
        secret_ns = ann[strings.ANN_DELETION_SECRET_NAMESPACE]
        if secret_name and secret_ns:
            return DeletionSecret(SecretRef(secret_name, secret_ns), "annotations")
        return DeletionSecret(None, "none")
    if not pv_class(pv) or sc is None:
        return DeletionSecret(None, "none")
    claim = spec(pv).get("claimRef")
    if not isinstance(claim, dict):
        return DeletionSecret(None, "none")
    try:
        ref = secrets.secret_reference(
            secrets.PROVISIONER,
            sc_params=str_map(sc.get("parameters")),
            pv_name=name(pv),
            pvc_name=str(claim.get("name") or ""),
            pvc_namespace=str(claim.get("namespace") or ""),
            pvc_annotations=None,
        )
    except SecretParamError as err:
        raise DeleteError(f"failed to get secretreference for volume {name(pv)}: {err}") from None
    return DeletionSecret(ref, "storageclass" if ref else "none")


def attachment_blocker(pv_name: str, attachments: Iterable[Mapping[str, Any]]) -> str | None:
    """Go's error text when a VolumeAttachment still references the PV, else None.

    Only checked when the driver has PUBLISH_UNPUBLISH_VOLUME.
    """
    for va in attachments:
        source = spec(va).get("source") or {}
        if isinstance(source, dict) and source.get("persistentVolumeName") == pv_name:
            return (
                f"persistentvolume {pv_name} is still attached to node {spec(va).get('nodeName')}"
            )
    return None


def build_delete_request(
    pv: Mapping[str, Any], secrets_data: Mapping[str, str] | None = None
) -> csi_pb2.DeleteVolumeRequest:
    """``DeleteVolumeRequest{volume_id = spec.csi.volumeHandle, secrets}``.

    Raises:
        DeleteError: ``invalid CSI PV``.
    """
    return csi_pb2.DeleteVolumeRequest(
        volume_id=volume_handle(pv), secrets=dict(secrets_data or {})
    )


# -- plans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolumeDeleted(a.Done):
    """DeleteVolume succeeded and the PV object is deleted (counted in the delete metrics)."""

    storage_class: str = ""
    volume_id: str = ""


@dataclass(frozen=True, slots=True)
class DeleteFailed(a.Retry):
    """The volume could not be deleted (a ``VolumeFailedDelete`` event says why)."""

    storage_class: str = ""


@dataclass(frozen=True, slots=True)
class FinalizerPending(a.Retry):
    """The volume and the PV object are deleted; only our finalizer is left to remove."""


_DONE = a.Done()


def _finalizer_patch(
    pv: Mapping[str, Any],
    ops: list[JsonDict],
    *,
    redo: Callable[[JsonDict, int], Plan],
    done: a.Outcome,
    failed: Callable[[str], a.Outcome],
    attempts: int,
) -> Plan:
    pv_name = name(pv)

    def again(fresh: JsonDict | None) -> Plan:
        return (done,) if fresh is None else redo(fresh, attempts - 1)

    def on_error(exc: ApiError) -> Plan:
        if exc.not_found:
            return (done,)
        if is_conflict(exc) and attempts > 1:
            return (a.Read(PV, pv_name, then=again),)
        return (failed(strings.api_message(exc)),)

    return (a.Patch(PV, pv_name, ops, type="json", then=lambda _: (done,), on_error=on_error),)


def protection_plan(pv: Mapping[str, Any], attempts: int = PATCH_ATTEMPTS) -> Plan:
    """Add or remove our finalizer as :func:`protection_finalizers` says (Done when neither)."""
    wanted = protection_finalizers(pv)
    if wanted is None:
        return (_DONE,)
    finalizer = strings.PV_FINALIZER
    present = finalizer in wanted
    ops = add_finalizer_patch(pv, finalizer) if present else remove_finalizer_patch(pv, finalizer)
    if ops is None:
        return (_DONE,)
    return _finalizer_patch(
        pv,
        ops,
        redo=protection_plan,
        done=_DONE,
        failed=lambda why: a.Retry(f"failed to update the PV finalizer: {why}"),
        attempts=attempts,
    )


def release_plan(
    pv: Mapping[str, Any], done: a.Outcome = _DONE, attempts: int = PATCH_ATTEMPTS
) -> Plan:
    """Remove our finalizer once the volume and the PV object are deleted, then ``done``.

    Only our entry is guarded (``test`` at its index), so other controllers removing their
    own finalizers meanwhile (``kubernetes.io/pv-protection``) do not make it fail.
    """
    ops = remove_finalizer_patch(pv, strings.PV_FINALIZER)
    if ops is None:
        return (done,)
    return _finalizer_patch(
        pv,
        ops,
        redo=lambda fresh, left: release_plan(fresh, done, left),
        done=done,
        failed=lambda why: FinalizerPending(f"failed to remove the PV finalizer: {why}"),
        attempts=attempts,
    )


def delete_plan(
    pv: Mapping[str, Any],
    *,
    storage_class: Mapping[str, Any] | None,
    attachments: Iterable[Mapping[str, Any]] | None,
) -> Plan:
    """Delete the volume of a Released PV, then the PV object, then our finalizer.

    Args:
        pv: the PV (Released, reclaim ``Delete``).
        storage_class: its StorageClass (for the secret fallback), or None.
        attachments: its VolumeAttachments when the driver has PUBLISH_UNPUBLISH_VOLUME (None:
            not checked).
    """
    klass = pv_class(pv)

    def failed(message: str) -> Plan:
        return (
            a.Emit(events.volume_failed_delete(message), dict(pv), PV),
            DeleteFailed(message, storage_class=klass),
        )

    try:
        found = deletion_secret(pv, storage_class)
        if attachments is not None:
            blocker = attachment_blocker(name(pv), attachments)
            if blocker:
                raise DeleteError(blocker)
        handle = volume_handle(pv)
    except DeleteError as err:
        return failed(str(err))

    def deleted(_: object = None) -> Plan:
        gone = VolumeDeleted(storage_class=klass, volume_id=handle)
        return (a.Delete(PV, name(pv), uid=uid(pv) or None), *release_plan(pv, gone))

    def answered(exc: BaseException) -> Plan:
        if delete_volume_succeeded(error_code(exc)):
            return deleted()
        return failed(format_error(exc))

    def call(data: Mapping[str, str]) -> Plan:
        request = build_delete_request(pv, data)
        return (a.Call("controller", "DeleteVolume", request, then=deleted, on_error=answered),)

    ref = found.ref
    if ref is None:
        return call({})

    def without(why: str) -> Plan:
        # As Go: a Secret that cannot be read does not stop the deletion.
        log.info("Deleting without secrets", pv=name(pv), reason=why)
        return call({})

    def with_secret(secret: JsonDict | None) -> Plan:
        if secret is None:
            return without(f'secrets "{ref.name}" not found')
        try:
            return call(secret_data(secret, f"{ref.namespace}/{ref.name}"))
        except SecretError as err:
            return failed(str(err))  # malformed, not missing: never half the secrets

    return (
        a.Read(
            SECRETS,
            ref.name,
            ref.namespace,
            then=with_secret,
            on_error=lambda exc: without(strings.api_message(exc)),
        ),
    )


def volume_plan(
    pv: Mapping[str, Any],
    *,
    known_names: Collection[str],
    storage_class: Mapping[str, Any] | None,
    attachments: Iterable[Mapping[str, Any]] | None,
    volume_deleted: bool = False,
) -> Plan:
    """The complete actions of one sync of ``pv``.

    Args:
        pv: the PV (newest copy).
        known_names: the driver name and other provisioner names we answer for.
        storage_class: the PV's StorageClass, or None.
        attachments: its VolumeAttachments (None: not checked).
        volume_deleted: this process already deleted the volume and the object (only the
            finalizer removal failed); a watch event still showing the PV must not send
            DeleteVolume again.
    """
    if not owns_volume(pv, known_names):
        return (_DONE,)
    if protection_finalizers(pv) is not None:
        return protection_plan(pv)  # the watch event brings the updated PV back
    if not should_delete(pv):
        return (_DONE,)
    if volume_deleted and is_deleting(pv):
        return release_plan(pv)
    return delete_plan(pv, storage_class=storage_class, attachments=attachments)
