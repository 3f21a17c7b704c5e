"""The snapshot-controller's fixed names: queues, Lease, event source, reasons, object names.

Everything here is a string the Go snapshot-controller v8.6 uses, so dashboards, alerts and
scripts that grep events keep working: the work-queue names (the ``name`` label of the
``workqueue_*`` metrics), the Lease ``snapshot-controller-leader``, the event source component
``snapshot-controller``, every event reason, and the names of the objects it creates
(``snapcontent-<uid>``, ``groupsnapcontent-<uid>``, and the sha256-named members of a group).
"""

from __future__ import annotations

import hashlib

ROLE = "snapshot-controller"
EVENT_COMPONENT = "snapshot-controller"
LEASE_NAME = "snapshot-controller-leader"

SNAPSHOT_QUEUE = "snapshot-controller-snapshot"
CONTENT_QUEUE = "snapshot-controller-content"
GROUP_SNAPSHOT_QUEUE = "snapshot-controller-group-snapshot"
GROUP_CONTENT_QUEUE = "snapshot-controller-group-content"
#: Ours: PVC source protection is decided per claim (Go decides it inside every VS sync).
CLAIM_QUEUE = "snapshot-controller-claim"

# -- event reasons on VolumeSnapshots ----------------------------------------------------------
GET_SNAPSHOT_CLASS_FAILED = "GetSnapshotClassFailed"
SET_DEFAULT_SNAPSHOT_CLASS_FAILED = "SetDefaultSnapshotClassFailed"
SNAPSHOT_VALIDATION_ERROR = "SnapshotValidationError"
SNAPSHOT_FINALIZER_ERROR = "SnapshotFinalizerError"
ERROR_PVC_FINALIZER = "ErrorPVCFinalizer"
SNAPSHOT_CONTENT_MISSING = "SnapshotContentMissing"
SNAPSHOT_CONTENT_MISMATCH = "SnapshotContentMismatch"
SNAPSHOT_CONTENT_MISBOUND = "SnapshotContentMisbound"
SNAPSHOT_MISBOUND = "SnapshotMisbound"
SNAPSHOT_BIND_FAILED = "SnapshotBindFailed"
SNAPSHOT_STATUS_UPDATE_FAILED = "SnapshotStatusUpdateFailed"
SNAPSHOT_HANDLE_SET = "SnapshotHandleSet"
SNAPSHOT_PVC_SOURCE_MISSING = "SnapshotPVCSourceMissing"
SNAPSHOT_CONTENT_CREATION_FAILED = "SnapshotContentCreationFailed"
CREATE_SNAPSHOT_CONTENT_FAILED = "CreateSnapshotContentFailed"
SNAPSHOT_DELETE_PENDING = "SnapshotDeletePending"
SNAPSHOT_CONTENT_OBJECT_DELETE_ERROR = "SnapshotContentObjectDeleteError"
CREATING_SNAPSHOT = "CreatingSnapshot"
SNAPSHOT_CREATED = "SnapshotCreated"
SNAPSHOT_READY = "SnapshotReady"
# -- on VolumeSnapshotContents -----------------------------------------------------------------
CONTENT_VALIDATION_ERROR = "ContentValidationError"
# -- on VolumeGroupSnapshots and their contents ------------------------------------------------
GET_GROUP_SNAPSHOT_CLASS_FAILED = "GetGroupSnapshotClassFailed"
SET_DEFAULT_GROUP_SNAPSHOT_CLASS_FAILED = "SetDefaultGroupSnapshotClassFailed"
GROUP_SNAPSHOT_VALIDATION_ERROR = "GroupSnapshotValidationError"
GROUP_SNAPSHOT_FINALIZER_ERROR = "GroupSnapshotFinalizerError"
GROUP_SNAPSHOT_CONTENT_MISSING = "GroupSnapshotContentMissing"
GROUP_SNAPSHOT_MISBOUND = "GroupSnapshotMisbound"
GROUP_SNAPSHOT_CONTENT_MISMATCH = "GroupSnapshotContentMismatch"
GROUP_SNAPSHOT_CONTENT_MISBOUND = "GroupSnapshotContentMisbound"
GROUP_SNAPSHOT_BIND_FAILED = "GroupSnapshotBindFailed"
GROUP_SNAPSHOT_STATUS_UPDATE_FAILED = "GroupSnapshotStatusUpdateFailed"
GROUP_SNAPSHOT_HANDLE_SET = "GroupSnapshotHandleSet"
GROUP_SNAPSHOT_CONTENT_CREATION_FAILED = "GroupSnapshotContentCreationFailed"
CREATE_GROUP_SNAPSHOT_CONTENT_FAILED = "CreateGroupSnapshotContentFailed"
GROUP_SNAPSHOT_CONTENT_OBJECT_DELETE_ERROR = "GroupSnapshotContentObjectDeleteError"
GROUP_CONTENT_VALIDATION_ERROR = "GroupContentValidationError"
SNAPSHOT_DELETE_ERROR = "SnapshotDeleteError"
CREATING_GROUP_SNAPSHOT = "CreatingGroupSnapshot"
GROUP_SNAPSHOT_CREATED = "GroupSnapshotCreated"
GROUP_SNAPSHOT_READY = "GroupSnapshotReady"

#: The prefix of Go's ``controllerUpdateError`` messages, kept in status errors for grep-ability.
CONTROLLER_UPDATE_FAIL_MSG = "snapshot controller failed to update"


def controller_update_error(name: str, message: str) -> str:
    """Go's ``newControllerUpdateError(name, message)`` text."""
    return f"{CONTROLLER_UPDATE_FAIL_MSG} {name} on API server: {message}"


def content_name(snapshot_uid: str) -> str:
    """The dynamic content of a VolumeSnapshot: ``snapcontent-<uid>``."""
    return f"snapcontent-{snapshot_uid}"


def group_content_name(group_uid: str) -> str:
    """The dynamic content of a VolumeGroupSnapshot: ``groupsnapcontent-<uid>``."""
    return f"groupsnapcontent-{group_uid}"


def _member_hash(group_uid: str, volume_handle: str) -> str:
    return hashlib.sha256((group_uid + volume_handle).encode()).hexdigest()


def member_snapshot_name(group_uid: str, volume_handle: str) -> str:
    """The VolumeSnapshot of one volume of a group: ``snapshot-<sha256(uid + handle)>``."""
    return f"snapshot-{_member_hash(group_uid, volume_handle)}"


def member_content_name(group_uid: str, volume_handle: str) -> str:
    """The content of one volume of a group: ``snapcontent-<sha256(uid + handle)>``."""
    return f"snapcontent-{_member_hash(group_uid, volume_handle)}"


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints it (double quotes, backslash escapes)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
