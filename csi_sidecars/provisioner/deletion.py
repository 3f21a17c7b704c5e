"""Deletion decisions for PersistentVolumes (sig-lib ``syncVolume`` + csi ``Delete``).

* :func:`owns_volume`: which PVs this provisioner manages (by ``pv.kubernetes.io/provisioned-by``
  or ``migrated-to``; statically created CSI PVs of our driver too).
* :func:`protection_finalizers`: add ``external-provisioner.volume.kubernetes.io/finalizer`` to
  Bound PVs with reclaim ``Delete``; remove it for ``Retain``/``Recycle``.
* :func:`should_delete`: Released + reclaim Delete, and not already finished.
* :func:`deletion_secret`: which Secret DeleteVolume uses (PV annotations first, StorageClass
  fallback for PVs from old provisioners).
* :func:`attachment_blocker`: refuse while a VolumeAttachment still references the PV.
* :func:`build_delete_request`; success (including ``NotFound``) is judged by
  :func:`csi_sidecars.provisioner.states.delete_volume_succeeded`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import (
    annotations_of,
    finalizers,
    is_deleting,
    name,
    spec,
    status,
    str_map,
)
from csi_sidecars.provisioner import keys, secrets
from csi_sidecars.provisioner.secrets import SecretParamError, SecretRef


class DeleteError(Exception):
    """Deletion cannot proceed now; the text becomes the ``VolumeFailedDelete`` event."""


def owns_volume(pv: Mapping[str, Any], known_names: Collection[str]) -> bool:
    """Whether this provisioner is responsible for ``pv``.

    With ``pv.kubernetes.io/provisioned-by``: that annotation or ``pv.kubernetes.io/migrated-to``
    must be a known name. Without it: a CSI PV of a known driver, or a known ``migrated-to``.
    """
    ann = annotations_of(pv)
    migrated_to = ann.get(keys.ANN_MIGRATED_TO, "")
    if keys.ANN_PROVISIONED_BY in ann:
        return ann[keys.ANN_PROVISIONED_BY] in known_names or migrated_to in known_names
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
        and keys.PV_FINALIZER not in current
    ):
        return [*current, keys.PV_FINALIZER]
    if policy in ("Retain", "Recycle") and keys.PV_FINALIZER in current:
        return [f for f in current if f != keys.PV_FINALIZER]
    return None


def should_delete(pv: Mapping[str, Any]) -> bool:
    """Whether the volume behind ``pv`` should be deleted now.

    Released, reclaim ``Delete``, and either not being deleted or still carrying our finalizer
    (a Released PV deleted by a user still gets its volume deleted).
    """
    if is_deleting(pv) and keys.PV_FINALIZER not in finalizers(pv):
        return False
    return (
        status(pv).get("phase") == "Released"
        and spec(pv).get("persistentVolumeReclaimPolicy") == "Delete"
    )


def finalizers_after_delete(pv: Mapping[str, Any]) -> list[str] | None:
    """The finalizers of the (re-read) PV after its volume and object were deleted, or None
    when our finalizer is not there (nothing to patch)."""
    current = finalizers(pv)
    if keys.PV_FINALIZER not in current:
        return None
    return [f for f in current if f != keys.PV_FINALIZER]


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
    if keys.ANN_BETA_STORAGE_CLASS in ann:
        return str(ann[keys.ANN_BETA_STORAGE_CLASS])
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
    if keys.ANN_DELETION_SECRET_NAME in ann and keys.ANN_DELETION_SECRET_NAMESPACE in ann:
        secret_name = ann[keys.ANN_DELETION_SECRET_NAME]
        secret_ns = ann[keys.ANN_DELETION_SECRET_NAMESPACE]
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
