"""The provisioner's strings, exactly as Go spells and prints them.

* Annotation, finalizer, parameter and label names: one module, so every decision function and
  every test uses the same spelling; a drop-in replacement lives or dies by these strings. The
  two ``csi-sidecars.io`` strings at the end are our own (the no-leak journal); Go has no
  equivalent.
* Values inside error messages and events, quoted as Go's ``%q`` / ``%v`` print them
  (:func:`go_quote`, :func:`go_list`, :func:`go_quoted_list`, :func:`go_map`), so they read like
  external-provisioner's; :func:`api_message` is the API server's text of an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import SNAPSHOT_GROUP

# PVC annotations set by kube-controller-manager / the scheduler.
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_ALPHA_SELECTED_NODE = "volume.alpha.kubernetes.io/selected-node"
ANN_MIGRATED_TO = "pv.kubernetes.io/migrated-to"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"

# PV annotations written by the provisioner.
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_DELETION_SECRET_NAME = "volume.kubernetes.io/provisioner-deletion-secret-name"
ANN_DELETION_SECRET_NAMESPACE = "volume.kubernetes.io/provisioner-deletion-secret-namespace"
ANN_MODIFY_SECRET_NAME = "volume.kubernetes.io/controller-modify-secret-name"
ANN_MODIFY_SECRET_NAMESPACE = "volume.kubernetes.io/controller-modify-secret-namespace"

# PV volumeAttributes key carrying the provisioner identity.
PROVISIONER_IDENTITY_KEY = "storage.kubernetes.io/csiProvisionerIdentity"

# Finalizers.
PV_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
CLONE_SOURCE_FINALIZER = "provisioner.storage.kubernetes.io/cloning-protection"
SNAPSHOT_SOURCE_FINALIZER = "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection"

# StorageClass parameters.
CSI_PARAMETER_PREFIX = "csi.storage.k8s.io/"
PARAM_FSTYPE = CSI_PARAMETER_PREFIX + "fstype"
PARAM_DEPRECATED_FSTYPE = "fstype"

# --extra-create-metadata keys.
PARAM_PVC_NAME = "csi.storage.k8s.io/pvc/name"
PARAM_PVC_NAMESPACE = "csi.storage.k8s.io/pvc/namespace"
PARAM_PV_NAME = "csi.storage.k8s.io/pv/name"

# Data source kinds and groups.
KIND_PVC = "PersistentVolumeClaim"
KIND_SNAPSHOT = "VolumeSnapshot"
SNAPSHOT_API_GROUP = SNAPSHOT_GROUP
#: On a VolumeSnapshotContent: "true" lets a restore change the volume mode of the source.
ANN_ALLOW_VOLUME_MODE_CHANGE = "snapshot.storage.kubernetes.io/allow-volume-mode-change"

# Our own: the journal (a Lease in the provisioner's namespace) keeps the no-leak records in
# these annotations.
ANN_JOURNAL = "provisioner.csi-sidecars.io/journal"
ANN_JOURNAL_RECORDS = "provisioner.csi-sidecars.io/journal-records"


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints it (a double-quoted string with escapes)."""
    return json.dumps(text, ensure_ascii=False)


def go_list(items: Iterable[Any]) -> str:
    """A list as Go's ``%v`` prints a slice of strings: ``[a b c]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def go_quoted_list(items: Iterable[str]) -> str:
    """A list as Go's ``%q`` prints a slice of strings: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_map(mapping: Mapping[str, str] | None) -> str:
    """A map as Go's ``%v`` prints it: ``map[a:1 b:2]`` with sorted keys."""
    items = sorted((mapping or {}).items())
    return "map[" + " ".join(f"{k}:{v}" for k, v in items) + "]"


def api_message(exc: BaseException) -> str:
    """The API server's message of an error (``str(exc)`` for anything else)."""
    if isinstance(exc, ApiError) and exc.message:
        return exc.message
    return str(exc) or type(exc).__name__
