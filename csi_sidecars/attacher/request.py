"""ControllerPublishVolume / ControllerUnpublishVolume requests, built as the Go attacher does.

* ``volume_id`` = ``spec.csi.volumeHandle``; ``volume_context`` = ``spec.csi.volumeAttributes``.
* ``readonly`` = ``spec.csi.readOnly``, forced to false unless the driver has
  ``PUBLISH_READONLY`` ("CO MUST set this field to false if SP does not have the
  PUBLISH_READONLY controller capability").
* ``volume_capability``: ``block`` when ``spec.volumeMode`` is ``Block``, else ``mount`` with
  ``fs_type`` = ``spec.csi.fsType`` or ``--default-fstype`` and ``mount_flags`` =
  ``spec.mountOptions``; the access mode comes from *all* PV access modes together
  (:func:`access_mode`, csi-lib-utils' mapping).
* ``secrets`` = the data of ``spec.csi.controllerPublishSecretRef``; the caller fetches it.

The spec may be a PersistentVolume's ``spec`` or a VolumeAttachment's
``spec.source.inlineVolumeSpec`` (migrated inline volumes); both have the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.attacher.objects import SourceError, csi_source
from csi_sidecars.csi.messages import csi_pb2

AccessMode = csi_pb2.VolumeCapability.AccessMode

RWO = "ReadWriteOnce"
ROX = "ReadOnlyMany"
RWX = "ReadWriteMany"
RWOP = "ReadWriteOncePod"


class RequestError(SourceError):
    """The PersistentVolume cannot be turned into a valid CSI request (e.g. access modes)."""


def access_mode(modes: Iterable[str], single_node_multi_writer: bool) -> int:
    """Map the PV access modes to one CSI access mode (csi-lib-utils ``ToCSIAccessMode``).

    ======================  ==========================  ==============================
    Kubernetes              CSI (default)               CSI (SINGLE_NODE_MULTI_WRITER)
    ======================  ==========================  ==============================
    ReadWriteOncePod alone  SINGLE_NODE_WRITER          SINGLE_NODE_SINGLE_WRITER
    ReadWriteMany (+ any)   MULTI_NODE_MULTI_WRITER     MULTI_NODE_MULTI_WRITER
    ReadOnlyMany            MULTI_NODE_READER_ONLY      MULTI_NODE_READER_ONLY
    ReadWriteOnce           SINGLE_NODE_WRITER          SINGLE_NODE_MULTI_WRITER
    ======================  ==========================  ==============================

    Raises:
        RequestError: ReadWriteOncePod with another mode, ReadOnlyMany with ReadWriteOnce (and
            no ReadWriteMany), or no known mode at all.
    """
    listed = list(modes)
    unique = set(listed)
    if RWOP in unique:
        if len(unique) > 1:
            raise RequestError(
                "Kubernetes does not support use of ReadWriteOncePod with other access modes "
                "on the same PersistentVolume"
            )
        return (
            AccessMode.SINGLE_NODE_SINGLE_WRITER
            if single_node_multi_writer
            else (AccessMode.SINGLE_NODE_WRITER)
        )
    if RWX in unique:
        return AccessMode.MULTI_NODE_MULTI_WRITER
    if ROX in unique and RWO in unique:
        raise RequestError(
            "CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume"
        )
    if ROX in unique:
        return AccessMode.MULTI_NODE_READER_ONLY
    if RWO in unique:
        return (
            AccessMode.SINGLE_NODE_MULTI_WRITER
            if single_node_multi_writer
            else (AccessMode.SINGLE_NODE_WRITER)
        )
    raise RequestError(f"unsupported AccessMode combination: [{' '.join(listed)}]")


def volume_capability(
    spec: Mapping[str, Any], *, single_node_multi_writer: bool, default_fstype: str = ""
) -> csi_pb2.VolumeCapability:
    """The one ``VolumeCapability`` published for a PV spec.

    Raises:
        SourceError: no CSI source in the spec.
        RequestError: unsupported access-mode combination.
    """
    csi = csi_source(spec)
    mode = access_mode(spec.get("accessModes") or [], single_node_multi_writer)
    if spec.get("volumeMode") == "Block":
        return csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(),
            access_mode=AccessMode(mode=mode),  # type: ignore[arg-type]
        )
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(
            fs_type=str(csi.get("fsType") or default_fstype),
            mount_flags=[str(flag) for flag in spec.get("mountOptions") or []],
        ),
        access_mode=AccessMode(mode=mode),  # type: ignore[arg-type]
    )


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def build_publish_request(
    spec: Mapping[str, Any],
    node_id: str,
    *,
    secrets: Mapping[str, str] | None = None,
    supports_publish_readonly: bool = False,
    supports_single_node_multi_writer: bool = False,
    default_fstype: str = "",
) -> csi_pb2.ControllerPublishVolumeRequest:
    """The ``ControllerPublishVolumeRequest`` for a PV (or inline) spec and a CSI node ID.

    Args:
        spec: ``PersistentVolume.spec`` or ``VolumeAttachment.spec.source.inlineVolumeSpec``.
        node_id: the CSI node ID (from the CSINode).
        secrets: data of the controller-publish secret, already decoded; None or empty = none.
        supports_publish_readonly: the driver has ``PUBLISH_READONLY``.
        supports_single_node_multi_writer: the driver has ``SINGLE_NODE_MULTI_WRITER``.
        default_fstype: ``--default-fstype``.

    Raises:
        SourceError: no CSI source in the spec.
        RequestError: unsupported access-mode combination.
    """
    csi = csi_source(spec)
    capability = volume_capability(
        spec,
        single_node_multi_writer=supports_single_node_multi_writer,
        default_fstype=default_fstype,
    )
    return csi_pb2.ControllerPublishVolumeRequest(
        volume_id=str(csi.get("volumeHandle") or ""),
        node_id=node_id,
        volume_capability=capability,
        readonly=bool(csi.get("readOnly")) and supports_publish_readonly,
        secrets=dict(secrets or {}),
        volume_context=_strings(csi.get("volumeAttributes")),
    )


def build_unpublish_request(
    volume_id: str, node_id: str, *, secrets: Mapping[str, str] | None = None
) -> csi_pb2.ControllerUnpublishVolumeRequest:
    """The ``ControllerUnpublishVolumeRequest``: volume handle, CSI node ID and secrets."""
    return csi_pb2.ControllerUnpublishVolumeRequest(
        volume_id=volume_id, node_id=node_id, secrets=dict(secrets or {})
    )
