"""The attacher's own accessors over raw VolumeAttachment, PersistentVolume and CSINode dicts.

Generic readers (metadata, name, finalizers, annotations, deletion timestamp, Secret data) are
those of :mod:`csi_sidecars.kube.objects`; this module adds what only the attacher reads. The
fields a slim cache must keep are:

* VolumeAttachment: ``metadata.{name, resourceVersion, deletionTimestamp, finalizers,
  annotations}``, ``spec.{attacher, nodeName, source.persistentVolumeName,
  source.inlineVolumeSpec}``, ``status`` (whole).
* PersistentVolume: ``metadata.{name, deletionTimestamp, finalizers, annotations}``,
  ``spec.{csi, volumeMode, accessModes, mountOptions, claimRef.{namespace,name}}`` and, only to
  recognise in-tree volumes, the presence of the in-tree source keys in :data:`IN_TREE_SOURCES`.
* CSINode: ``metadata.name``, ``spec.drivers[].{name, nodeID}``.
* Secret (read, not cached): ``data``.

Errors are :class:`SourceError` with the message the Go attacher would put into
``status.attachError`` / ``status.detachError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.attacher import names
from csi_sidecars.kube.objects import JsonDict, spec, status

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

Obj = Mapping[str, Any]


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


def va_attacher(va: Obj) -> str:
    """``spec.attacher`` of a VolumeAttachment."""
    return str(spec(va).get("attacher") or "")


def va_node_name(va: Obj) -> str:
    """``spec.nodeName`` of a VolumeAttachment."""
    return str(spec(va).get("nodeName") or "")


def va_source(va: Obj) -> JsonDict:
    """``spec.source`` of a VolumeAttachment."""
    return _dict(spec(va).get("source"))


def va_pv_name(va: Obj) -> str | None:
    """``spec.source.persistentVolumeName``, or None."""
    value = va_source(va).get("persistentVolumeName")
    return str(value) if value is not None else None


def va_attached(va: Obj) -> bool:
    """``status.attached``."""
    return bool(status(va).get(names.STATUS_ATTACHED))


def inline_spec(va: Obj) -> JsonDict | None:
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


def pv_spec(pv: Obj) -> JsonDict:
    """``spec`` of a PersistentVolume."""
    return dict(spec(pv))


def in_tree_plugin(pv: Obj) -> str | None:
    """The in-tree plugin name of a migratable in-tree PersistentVolume, else None."""
    pv_fields = spec(pv)
    if isinstance(pv_fields.get("csi"), dict):
        return None
    for key, plugin in IN_TREE_SOURCES.items():
        if pv_fields.get(key) is not None:
            return plugin
    return None


def csi_source(volume_spec: Obj, pv_name: str | None = None) -> JsonDict:
    """``csi`` of a PersistentVolumeSpec (PV or inline).

    Raises:
        SourceError: for a spec without a CSI source. In-tree volumes would need CSI migration
            translation, which this implementation does not do; the message says so.
    """
    csi = volume_spec.get("csi")
    if isinstance(csi, dict):
        return csi
    for key, plugin in IN_TREE_SOURCES.items():
        if volume_spec.get(key) is not None:
            what = f"PersistentVolume {pv_name!r}" if pv_name else "volume"
            raise SourceError(
                f"{what} uses in-tree volume plugin {plugin} ({key}); translating in-tree "
                "volumes for CSI migration is not supported"
            )
    raise SourceError("pv spec contained non-csi source that was not migrated")


def secret_ref(csi: Obj) -> SecretRef | None:
    """``controllerPublishSecretRef`` of a CSI source, or None when not set."""
    ref = csi.get("controllerPublishSecretRef")
    if not isinstance(ref, dict):
        return None
    return SecretRef(namespace=str(ref.get("namespace") or ""), name=str(ref.get("name") or ""))


def csinode_node_id(csinode: Obj | None, driver: str) -> str | None:
    """``spec.drivers[name == driver].nodeID`` of a CSINode; None without CSINode or driver."""
    if csinode is None:
        return None
    for entry in spec(csinode).get("drivers") or []:
        if isinstance(entry, dict) and entry.get("name") == driver:
            return str(entry.get("nodeID") or "")
    return None


def node_id_error(csinode: Obj | None, node_name: str, driver: str) -> str:
    """The Go error text for a node ID that cannot be found in the CSINode."""
    if csinode is None:
        return f'csinode.storage.k8s.io "{node_name}" not found'
    return f"CSINode {node_name} does not contain driver {driver}"


def pv_not_found(pv_name: str) -> str:
    """The Go lister's error text for a missing PersistentVolume."""
    return f'persistentvolume "{pv_name}" not found'


def pv_claim(pv: Obj) -> tuple[str, str] | None:
    """``(namespace, name)`` of the PVC a PersistentVolume is bound to, or None."""
    ref = _dict(spec(pv).get("claimRef"))
    if ref.get("name") and ref.get("namespace"):
        return str(ref["namespace"]), str(ref["name"])
    return None
