"""Every string the resizer writes or matches: annotations, conditions, statuses, events, gates.

They are external-resizer v2.2's, so a cluster can switch between it and this implementation in
both directions: the same PVC and PV fields, the same event reasons and texts, the same Lease.
"""

from __future__ import annotations

from csi_sidecars.kube.objects import sanitize_name
from csi_sidecars.runtime.featuregates import Gate

STORAGE = "storage"

# -- annotations ---------------------------------------------------------------------------------

#: PVC annotation naming the resizer of a (migrated) claim; a change re-queues the claim.
RESIZER_ANNOTATION = "volume.kubernetes.io/storage-resizer"
#: PV annotation with the PVC capacity before an expansion that needs a node step.
PRE_RESIZE_CAPACITY = "volume.alpha.kubernetes.io/pre-resize-capacity"
#: PVC annotation telling kubelet that no node expansion is needed.
NODE_EXPANSION_NOT_REQUIRED = "volume.kubernetes.io/node-expansion-not-required"
#: PV annotations naming the Secret for ControllerModifyVolume.
MODIFY_SECRET_NAME = "volume.kubernetes.io/controller-modify-secret-name"
MODIFY_SECRET_NAMESPACE = "volume.kubernetes.io/controller-modify-secret-namespace"

#: Keys ``--extra-modify-metadata`` adds to the mutable parameters.
PVC_NAME_KEY = "csi.storage.k8s.io/pvc/name"
PVC_NAMESPACE_KEY = "csi.storage.k8s.io/pvc/namespace"
PV_NAME_KEY = "csi.storage.k8s.io/pv/name"

# -- PVC conditions --------------------------------------------------------------------------------

RESIZING = "Resizing"
FS_RESIZE_PENDING = "FileSystemResizePending"
CONTROLLER_RESIZE_ERROR = "ControllerResizeError"
NODE_RESIZE_ERROR = "NodeResizeError"
#: The conditions the expansion owns (replaced or dropped; every other condition is kept).
RESIZE_CONDITIONS = frozenset(
    {RESIZING, FS_RESIZE_PENDING, CONTROLLER_RESIZE_ERROR, NODE_RESIZE_ERROR}
)
MODIFYING_VOLUME = "ModifyingVolume"
MODIFY_VOLUME_ERROR = "ModifyVolumeError"

FS_RESIZE_PENDING_MESSAGE = (
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
)

# -- status.allocatedResourceStatuses[storage] -----------------------------------------------------

CONTROLLER_RESIZE_IN_PROGRESS = "ControllerResizeInProgress"
CONTROLLER_RESIZE_INFEASIBLE = "ControllerResizeInfeasible"
NODE_RESIZE_PENDING = "NodeResizePending"
NODE_RESIZE_IN_PROGRESS = "NodeResizeInProgress"
NODE_RESIZE_INFEASIBLE = "NodeResizeInfeasible"

# -- status.modifyVolumeStatus.status --------------------------------------------------------------

MODIFY_PENDING = "Pending"
MODIFY_IN_PROGRESS = "InProgress"
MODIFY_INFEASIBLE = "Infeasible"

# -- event reasons ---------------------------------------------------------------------------------

VOLUME_RESIZING = "Resizing"
VOLUME_RESIZE_FAILED = "VolumeResizeFailed"
VOLUME_RESIZE_SUCCESS = "VolumeResizeSuccessful"
FS_RESIZE_REQUIRED = "FileSystemResizeRequired"
VOLUME_MODIFY = "VolumeModify"
VOLUME_MODIFY_FAILED = "VolumeModifyFailed"
VOLUME_MODIFY_SUCCESS = "VolumeModifySuccessful"
VOLUME_MODIFY_CANCELLED = "VolumeModifyCanceled"

# -- feature gates ---------------------------------------------------------------------------------

GATE_ANNOTATE_FS_RESIZE = "AnnotateFsResize"
GATE_RECOVER = "RecoverVolumeExpansionFailure"
GATE_VAC = "VolumeAttributesClass"
GATE_RELEASE_ON_EXIT = "ReleaseLeaderElectionOnExit"

GATES = {
    GATE_ANNOTATE_FS_RESIZE: Gate(False, "alpha"),  # v2.2.0: alpha, off (the source, not the docs)
    GATE_RECOVER: Gate(True, "ga"),
    GATE_VAC: Gate(True, "ga"),
    GATE_RELEASE_ON_EXIT: Gate(False, "alpha"),
}


def lease_name(driver: str) -> str:
    """The Lease of ``--leader-election``: ``external-resizer-<sanitised driver>``."""
    return "external-resizer-" + sanitize_name(driver)


def event_component(driver: str) -> str:
    """``source.component`` of the resizer's events."""
    return f"external-resizer {driver}"


def queue_name(driver: str) -> str:
    """The work queue (the ``name`` label of the workqueue metrics), as in Go."""
    return f"{driver}-pvc"
