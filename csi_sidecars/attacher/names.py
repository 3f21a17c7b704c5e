"""Every name the attacher writes or matches: finalizers, annotations, fields, queues, events.

The Go external-attacher v4.12 strings are reproduced exactly so that a cluster can switch
between it and this implementation in both directions:

* finalizer ``external-attacher/<sanitised driver>`` on VolumeAttachments and PersistentVolumes;
* VolumeAttachment annotation ``csi.alpha.kubernetes.io/node-id`` (node ID used at attach time);
* Lease ``external-attacher-leader-<sanitised driver>``;
* work queues ``csi-attacher-va`` and ``csi-attacher-pv`` (the ``name`` label of the workqueue
  metrics).

Ours, on top (ignored by the Go attacher, so switching back is harmless):

* ``attacher.csi-sidecars.io/volume-handle`` and
  ``attacher.csi-sidecars.io/controller-publish-secret-{name,namespace}`` on the
  VolumeAttachment, written together with the finalizer before ControllerPublishVolume, so that
  ControllerUnpublishVolume can still be sent when the PersistentVolume is already gone
  (external-attacher issue #235). Only the secret *reference* is stored, never secret data.
* Event reasons (the Go attacher emits no events, issue #363); we reuse the reason strings
  Kubernetes' attach/detach controller uses, so existing event filters keep working.
"""

from __future__ import annotations

from csi_sidecars.kube.objects import sanitize_name

#: Prefix of the finalizer on VolumeAttachments and PersistentVolumes.
FINALIZER_PREFIX = "external-attacher/"

#: VolumeAttachment annotation with the CSI node ID the volume was published to.
NODE_ID_ANNOTATION = "csi.alpha.kubernetes.io/node-id"

#: PersistentVolume annotation naming the CSI driver an in-tree PV was migrated to.
MIGRATED_TO_ANNOTATION = "pv.kubernetes.io/migrated-to"

#: Our VolumeAttachment annotations that let detach work without the PersistentVolume.
ANNOTATION_DOMAIN = "attacher.csi-sidecars.io"
VOLUME_HANDLE_ANNOTATION = f"{ANNOTATION_DOMAIN}/volume-handle"
SECRET_NAME_ANNOTATION = f"{ANNOTATION_DOMAIN}/controller-publish-secret-name"
SECRET_NAMESPACE_ANNOTATION = f"{ANNOTATION_DOMAIN}/controller-publish-secret-namespace"

#: Prefix of the Lease name (before the sanitised driver name).
LEASE_PREFIX = "external-attacher-leader-"

#: Work queue names (label ``name`` of the ``workqueue_*`` metrics).
VA_QUEUE = "csi-attacher-va"
PV_QUEUE = "csi-attacher-pv"

#: Component name for the events we record (``source.component``).
EVENT_COMPONENT = "csi-attacher"

# VolumeAttachment status fields (storage.k8s.io/v1 VolumeAttachmentStatus / VolumeError).
STATUS_ATTACHED = "attached"
STATUS_ATTACHMENT_METADATA = "attachmentMetadata"
STATUS_ATTACH_ERROR = "attachError"
STATUS_DETACH_ERROR = "detachError"
ERROR_MESSAGE = "message"
ERROR_TIME = "time"
ERROR_CODE = "errorCode"

# Event reasons (the attach/detach controller's strings; see module docstring).
REASON_ATTACH_SUCCEEDED = "SuccessfulAttachVolume"
REASON_ATTACH_FAILED = "FailedAttachVolume"
REASON_DETACH_SUCCEEDED = "SuccessfulDetachVolume"
REASON_DETACH_FAILED = "FailedDetachVolume"

# Feature gates of external-attacher v4.12.
GATE_RELEASE_LEADER_ELECTION_ON_EXIT = "ReleaseLeaderElectionOnExit"
GATE_MUTABLE_CSINODE_ALLOCATABLE_COUNT = "MutableCSINodeAllocatableCount"


def finalizer_name(driver: str) -> str:
    """The attacher finalizer for ``driver``: ``external-attacher/<sanitised driver>``.

    Raises:
        ValueError: for an empty driver name (the Go code would panic).
    """
    if not driver:
        raise ValueError("driver name is empty")
    return FINALIZER_PREFIX + sanitize_name(driver)


def lease_name(driver: str) -> str:
    """The leader-election Lease name: ``external-attacher-leader-<driver>``, sanitised.

    csi-lib-utils sanitises the whole lock name, so ``/`` in the driver name becomes ``-`` too.
    """
    return sanitize_name(LEASE_PREFIX + driver)
