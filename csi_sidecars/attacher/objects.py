"""Read-only accessors over raw VolumeAttachment, PersistentVolume, CSINode and Secret dicts.

The attacher's caches hold the objects as the API server returns them (JSON dicts, possibly
slimmed). Every field the attacher reads goes through this module, so the list of fields a slim
cache must keep is the list below:

* VolumeAttachment: ``metadata.{name, resourceVersion, deletionTimestamp, finalizers,
  annotations}``, ``spec.{attacher, nodeName, source.persistentVolumeName,
  source.inlineVolumeSpec}``, ``status`` (whole).
* PersistentVolume: ``metadata.{name, deletionTimestamp, finalizers, annotations}``,
  ``spec.{csi, volumeMode, accessModes, mountOptions, claimRef.{namespace,name}}`` and, only to
  recognise in-tree volumes, the presence of the in-tree source keys in :data:`IN_TREE_SOURCES`.
* CSINode: ``metadata.name``, ``spec.drivers[].{name, nodeID}``.
* Secret (fetched, not cached): ``data``.

Errors are :class:`SourceError` with the message the Go attacher would put into
``status.attachError`` / ``status.detachError``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.attacher import names

JsonDict = dict[str, Any]

#: In-tree PersistentVolume sources that CSI migration can translate, with their plugin names.
IN_TREE_SOURCES: dict[str, str] = {
    "awsElasticBlockStore": "kubernetes.io/aws-ebs",
    "azureDisk": "kubernetes.io/azure-disk",
    "azureFile": "kubernetes.io/azure-file",
    "cinder": "kubernetes.io/cinder",
    "gcePersistentDisk": "kubernetes.io/gce-pd",
    "portworxVolume": "kubernetes.io/portworx-volume",
    "vsphereVolume": "kubernetes.io/vsphere-volume",
}


class SourceError(Exception):
    """The objects do not describe a volume the attacher can publish or unpublish."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A ``controllerPublishSecretRef``: where the ControllerPublish/Unpublish secret lives."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def _dict(value: Any) -> JsonDict:
    return value if isinstance(value, dict) else {}


def metadata(obj: Mapping[str, Any]) -> JsonDict:
    """``metadata`` of an object (empty dict when absent)."""
    return _dict(obj.get("metadata"))


def name_of(obj: Mapping[str, Any]) -> str:
    """``metadata.name``."""
    return str(metadata(obj).get("name") or "")


def finalizers(obj: Mapping[str, Any]) -> list[str] | None:
    """``metadata.finalizers``; None when the field is absent (not the same as ``[]``)."""
    value = metadata(obj).get("finalizers")
    return list(value) if isinstance(value, list) else None


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """``metadata.annotations``; None when the field is absent."""
    value = metadata(obj).get("annotations")
    return dict(value) if isinstance(value, dict) else None


def annotation(obj: Mapping[str, Any], key: str) -> str | None:
    """One annotation, or None when it is not set."""
    return (annotations_of(obj) or {}).get(key)


def has_finalizer(obj: Mapping[str, Any], finalizer: str) -> bool:
    """Whether ``finalizer`` is in ``metadata.finalizers``."""
    return finalizer in (finalizers(obj) or [])


def is_deleting(obj: Mapping[str, Any]) -> bool:
    """Whether ``metadata.deletionTimestamp`` is set."""
    return bool(metadata(obj).get("deletionTimestamp"))


def va_attacher(va: Mapping[str, Any]) -> str:
    """``spec.attacher`` of a VolumeAttachment."""
    return str(_dict(va.get("spec")).get("attacher") or "")


def va_node_name(va: Mapping[str, Any]) -> str:
    """``spec.nodeName`` of a VolumeAttachment."""
    return str(_dict(va.get("spec")).get("nodeName") or "")


def va_source(va: Mapping[str, Any]) -> JsonDict:
    """``spec.source`` of a VolumeAttachment."""
    return _dict(_dict(va.get("spec")).get("source"))


def va_pv_name(va: Mapping[str, Any]) -> str | None:
    """``spec.source.persistentVolumeName``, or None."""
    value = va_source(va).get("persistentVolumeName")
    return str(value) if value is not None else None


def va_status(va: Mapping[str, Any]) -> JsonDict:
    """``status`` of a VolumeAttachment (empty dict when absent)."""
    return _dict(va.get("status"))


def va_attached(va: Mapping[str, Any]) -> bool:
    """``status.attached``."""
    return bool(va_status(va).get(names.STATUS_ATTACHED))


def inline_spec(va: Mapping[str, Any]) -> JsonDict | None:
    """``spec.source.inlineVolumeSpec`` (a PersistentVolumeSpec), or None.

    Raises:
        SourceError: when both or neither of ``persistentVolumeName`` and ``inlineVolumeSpec``
            are set, or the inline spec has no ``csi`` source.
    """
    source = va_source(va)
    has_pv = source.get("persistentVolumeName") is not None
    inline = source.get("inlineVolumeSpec")
    if has_pv and inline is not None:
        raise SourceError(
            "both InlineCSIVolumeSource and PersistentVolumeName specified in VA source"
        )
    if has_pv:
        return None
    if inline is None:
        raise SourceError(
            "neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source"
        )
    if not isinstance(_dict(inline).get("csi"), dict):
        raise SourceError("inline volume spec contains nil CSI source")
    return _dict(inline)


def pv_spec(pv: Mapping[str, Any]) -> JsonDict:
    """``spec`` of a PersistentVolume."""
    return _dict(pv.get("spec"))


def in_tree_plugin(pv: Mapping[str, Any]) -> str | None:
    """The in-tree plugin name of a migratable in-tree PersistentVolume, else None."""
    spec = pv_spec(pv)
    if isinstance(spec.get("csi"), dict):
        return None
    for key, plugin in IN_TREE_SOURCES.items():
        if spec.get(key) is not None:
            return plugin
    return None


def csi_source(spec: Mapping[str, Any], pv_name: str | None = None) -> JsonDict:
    """``csi`` of a PersistentVolumeSpec (PV or inline).

    Raises:
        SourceError: for a spec without a CSI source. In-tree volumes would need CSI migration
            translation, which this implementation does not do; the message says so.
    """
    csi = spec.get("csi")
    if isinstance(csi, dict):
        return csi
    for key, plugin in IN_TREE_SOURCES.items():
        if spec.get(key) is not None:
            what = f"PersistentVolume {pv_name!r}" if pv_name else "volume"
            raise SourceError(
                f"{what} uses in-tree volume plugin {plugin} ({key}); translating in-tree "
                "volumes for CSI migration is not supported"
            )
    raise SourceError("pv spec contained non-csi source that was not migrated")


def secret_ref(csi: Mapping[str, Any]) -> SecretRef | None:
    """``controllerPublishSecretRef`` of a CSI source, or None when not set."""
    ref = csi.get("controllerPublishSecretRef")
    if not isinstance(ref, dict):
        return None
    return SecretRef(namespace=str(ref.get("namespace") or ""), name=str(ref.get("name") or ""))


def csinode_node_id(csinode: Mapping[str, Any] | None, driver: str) -> str | None:
    """``spec.drivers[name == driver].nodeID`` of a CSINode; None without CSINode or driver."""
    if csinode is None:
        return None
    for entry in _dict(csinode.get("spec")).get("drivers") or []:
        if isinstance(entry, dict) and entry.get("name") == driver:
            return str(entry.get("nodeID") or "")
    return None


def node_id_error(csinode: Mapping[str, Any] | None, node_name: str, driver: str) -> str:
    """The Go error text for a node ID that cannot be found in the CSINode."""
    if csinode is None:
        return f'csinode.storage.k8s.io "{node_name}" not found'
    return f"CSINode {node_name} does not contain driver {driver}"


def pv_not_found(pv_name: str) -> str:
    """The Go lister's error text for a missing PersistentVolume."""
    return f'persistentvolume "{pv_name}" not found'


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """The decoded ``data`` of a Secret as CSI ``secrets`` (key -> UTF-8 text).

    Raises:
        ValueError: for a value that is not base64 or not UTF-8; the message names the key,
            never the value.
    """
    out: dict[str, str] = {}
    for key, value in _dict(secret.get("data")).items():
        try:
            out[str(key)] = base64.b64decode(str(value or ""), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"secret key {key!r} is not valid base64-encoded UTF-8") from None
    return out


def pv_claim(pv: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(namespace, name)`` of the PVC a PersistentVolume is bound to, or None."""
    ref = _dict(pv_spec(pv).get("claimRef"))
    if ref.get("name") and ref.get("namespace"):
        return str(ref["namespace"]), str(ref["name"])
    return None
