"""The snapshot API (external-snapshotter v8.6 CRDs): resources and the strings on its objects.

Both snapshot roles (the snapshot-controller and the csi-snapshotter sidecar) read and write the
same six kinds and the same annotations and finalizers, and must match the Go components
exactly so a cluster can switch between them. The names mirror the Go constants of
``external-snapshotter/pkg/utils`` in upper snake case (``AnnDeletionSecretRefName`` ->
:data:`ANN_DELETION_SECRET_REF_NAME`).

The group snapshot kinds use ``v1``: since v8.6 the Go controllers use the v1 clients (the CRDs
store v1beta2 and serve both with identical schemas).
"""

from __future__ import annotations

from csi_sidecars.kube.resources import Resource

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
GROUP_SNAPSHOT_GROUP = "groupsnapshot.storage.k8s.io"

VOLUME_SNAPSHOTS = Resource(SNAPSHOT_GROUP, "v1", "volumesnapshots", True, "VolumeSnapshot")
VOLUME_SNAPSHOT_CONTENTS = Resource(
    SNAPSHOT_GROUP, "v1", "volumesnapshotcontents", False, "VolumeSnapshotContent"
)
VOLUME_SNAPSHOT_CLASSES = Resource(
    SNAPSHOT_GROUP, "v1", "volumesnapshotclasses", False, "VolumeSnapshotClass"
)
VOLUME_GROUP_SNAPSHOTS = Resource(
    GROUP_SNAPSHOT_GROUP, "v1", "volumegroupsnapshots", True, "VolumeGroupSnapshot"
)
VOLUME_GROUP_SNAPSHOT_CONTENTS = Resource(
    GROUP_SNAPSHOT_GROUP, "v1", "volumegroupsnapshotcontents", False, "VolumeGroupSnapshotContent"
)
VOLUME_GROUP_SNAPSHOT_CLASSES = Resource(
    GROUP_SNAPSHOT_GROUP, "v1", "volumegroupsnapshotclasses", False, "VolumeGroupSnapshotClass"
)

# -- class parameters (csiParameterPrefix keys) ------------------------------------------------

#: Class parameters with this prefix are for the sidecars, not passed on to the driver.
CSI_PARAMETER_PREFIX = "csi.storage.k8s.io/"
PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY = CSI_PARAMETER_PREFIX + "snapshotter-secret-name"
PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY = CSI_PARAMETER_PREFIX + "snapshotter-secret-namespace"
PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY = CSI_PARAMETER_PREFIX + "group-snapshotter-secret-name"
PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY = (
    CSI_PARAMETER_PREFIX + "group-snapshotter-secret-namespace"
)
PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY = CSI_PARAMETER_PREFIX + "snapshotter-list-secret-name"
PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY = (
    CSI_PARAMETER_PREFIX + "snapshotter-list-secret-namespace"
)
PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY = (
    CSI_PARAMETER_PREFIX + "group-snapshotter-get-secret-name"
)
PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY = (
    CSI_PARAMETER_PREFIX + "group-snapshotter-get-secret-namespace"
)
#: The reserved keys the sidecar strips from class parameters; any other reserved key is an error.
RESERVED_PARAMETER_KEYS = frozenset(
    {
        PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
        PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
        PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
        PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
        PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    }
)
#: ``--extra-create-metadata`` parameters of CreateSnapshot.
PREFIXED_VOLUME_SNAPSHOT_NAME_KEY = CSI_PARAMETER_PREFIX + "volumesnapshot/name"
PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY = CSI_PARAMETER_PREFIX + "volumesnapshot/namespace"
PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY = CSI_PARAMETER_PREFIX + "volumesnapshotcontent/name"
#: ``--extra-create-metadata`` parameters of CreateVolumeGroupSnapshot.
PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY = CSI_PARAMETER_PREFIX + "volumegroupsnapshot/name"
PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY = (
    CSI_PARAMETER_PREFIX + "volumegroupsnapshot/namespace"
)
PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY = (
    CSI_PARAMETER_PREFIX + "volumegroupsnapshotcontent/name"
)

# -- finalizers --------------------------------------------------------------------------------

VSC_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
VS_BOUND_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
VS_AS_SOURCE_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
VS_IN_GROUP_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-in-group-protection"
PVC_FINALIZER = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
VGSC_FINALIZER = "groupsnapshot.storage.kubernetes.io/volumegroupsnapshotcontent-bound-protection"
VGS_BOUND_FINALIZER = "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-bound-protection"

# -- annotations and labels --------------------------------------------------------------------

ANN_IS_DEFAULT_SNAPSHOT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
ANN_IS_DEFAULT_GROUP_SNAPSHOT_CLASS = "groupsnapshot.storage.kubernetes.io/is-default-class"
#: On a content: the snapshot-controller saw its VolumeSnapshot being deleted.
ANN_VOLUME_SNAPSHOT_BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
#: On a content: CreateSnapshot was sent and has not answered with success or a final error.
ANN_VOLUME_SNAPSHOT_BEING_CREATED = "snapshot.storage.kubernetes.io/volumesnapshot-being-created"
ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED = (
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-being-created"
)
ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED = (
    "groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-being-deleted"
)
#: The Secret used for CreateSnapshot / DeleteSnapshot, recorded on the content.
ANN_DELETION_SECRET_REF_NAME = "snapshot.storage.kubernetes.io/deletion-secret-name"
ANN_DELETION_SECRET_REF_NAMESPACE = "snapshot.storage.kubernetes.io/deletion-secret-namespace"
ANN_DELETION_GROUP_SECRET_REF_NAME = "groupsnapshot.storage.kubernetes.io/deletion-secret-name"
ANN_DELETION_GROUP_SECRET_REF_NAMESPACE = (
    "groupsnapshot.storage.kubernetes.io/deletion-secret-namespace"
)
#: On a member content of a group snapshot: the group's handle (never CreateSnapshot for it).
VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION = "groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle"
#: With distributed snapshotting: the node whose sidecar handles the content.
VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL = "snapshot.storage.kubernetes.io/managed-by"

# -- values ------------------------------------------------------------------------------------

DELETION_POLICY_DELETE = "Delete"
DELETION_POLICY_RETAIN = "Retain"

#: Feature gates both roles have.
GATE_VOLUME_GROUP_SNAPSHOT = "CSIVolumeGroupSnapshot"
GATE_RELEASE_LEADER_ELECTION_ON_EXIT = "ReleaseLeaderElectionOnExit"
