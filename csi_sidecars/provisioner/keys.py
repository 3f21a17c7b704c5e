"""Annotation, finalizer, parameter and label strings of the provisioner, exactly as Go spells them.

One module so every decision function and every test uses the same spelling; a drop-in
replacement lives or dies by these strings. The two ``csi-sidecars.io`` strings at the end are our
own (the no-leak journal, see :mod:`csi_sidecars.provisioner`); Go has no equivalent.
"""

from __future__ import annotations

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
SNAPSHOT_API_GROUP = "snapshot.storage.k8s.io"

# Our own: the journal (a Lease in the provisioner's namespace) keeps the no-leak records in
# these annotations.
ANN_JOURNAL = "provisioner.csi-sidecars.io/journal"
ANN_JOURNAL_RECORDS = "provisioner.csi-sidecars.io/journal-records"
