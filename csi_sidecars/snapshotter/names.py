"""The names the snapshotter writes or matches that are its own (not the shared snapshot API).

The Go csi-snapshotter v8.6 strings are kept exactly: the Lease
``external-snapshotter-leader-<driver>``, the work queues ``csi-snapshotter-content`` and
``csi-snapshotter-groupsnapshotcontent`` (the ``name`` label of the ``workqueue_*`` metrics),
the event component ``csi-snapshotter <driver>`` and the event reasons. The snapshot names sent
to the driver (``<prefix>-<VolumeSnapshot UID>``) are Go's, so a switch between the two
sidecars in either direction finds the same backend snapshots.

Ours, on top: :data:`ANN_CREATE_REQUEST` records the CreateSnapshot (or
CreateVolumeGroupSnapshot) request, without secrets, next to the being-created annotation, so a
call that may still be in flight is always repeated identically, even when the class has been
changed or deleted meanwhile (see :mod:`csi_sidecars.snapshotter.content`). The Go sidecar
ignores it.
"""

from __future__ import annotations

ROLE = "snapshotter"

#: Prefix of the Lease name; the driver name follows with "/" replaced by "-" (then sanitised).
LEASE_PREFIX = "external-snapshotter-leader"

CONTENT_QUEUE = "csi-snapshotter-content"
GROUP_CONTENT_QUEUE = "csi-snapshotter-groupsnapshotcontent"

#: The recorded request of a CreateSnapshot that may be in flight (JSON, no secrets).
ANN_CREATE_REQUEST = "snapshotter.csi-sidecars.io/create-request"

# Event reasons (Go's).
SNAPSHOT_CREATION_FAILED = "SnapshotCreationFailed"
SNAPSHOT_CHECK_FAILED = "SnapshotContentCheckandUpdateFailed"
SNAPSHOT_DELETE_ERROR = "SnapshotDeleteError"
GROUP_SNAPSHOT_CREATION_FAILED = "GroupSnapshotCreationFailed"
GROUP_SNAPSHOT_CHECK_FAILED = "GroupSnapshotContentCheckandUpdateFailed"
GROUP_SNAPSHOT_DELETE_ERROR = "GroupSnapshotDeleteError"

#: Dash-less UIDs have 32 hex digits: the longest --*-name-uuid-length that makes sense.
MAX_UUID_LENGTH = 32


def lease_name(driver: str) -> str:
    """The Lease name for ``driver`` before sanitising (Go: "/" -> "-")."""
    return f"{LEASE_PREFIX}-{driver.replace('/', '-')}"


def event_component(driver: str) -> str:
    """``source.component`` of our events (Go: ``csi-snapshotter <driver>``)."""
    return f"csi-snapshotter {driver}"


def object_name(prefix: str, uid: str, uuid_length: int) -> str:
    """The driver-side name of a snapshot or group snapshot: ``<prefix>-<uid>``.

    With ``uuid_length`` N >= 0 the UID loses its dashes and is cut to N characters (Go's
    ``makeSnapshotName``); -1 keeps it whole. The flags are validated at start-up, so N never
    exceeds :data:`MAX_UUID_LENGTH` here.
    """
    if uuid_length < 0:
        return f"{prefix}-{uid}"
    return f"{prefix}-{uid.replace('-', '')[:uuid_length]}"
