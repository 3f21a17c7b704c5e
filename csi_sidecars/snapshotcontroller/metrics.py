"""The snapshot-controller's operation metrics, with the Go names, labels and buckets.

* ``snapshot_controller_operation_total_seconds`` (histogram; labels ``driver_name``,
  ``operation_name``, ``snapshot_type``, ``operation_status``; buckets 0.1 s to 600 s): how long
  ``CreateSnapshot`` (until ``status.creationTime``), ``CreateSnapshotAndReady`` (until
  ``readyToUse``) and ``DeleteSnapshot`` (until the object is gone) took, and the group
  equivalents. A deletion that interrupts a creation records the creation as ``cancel``.
* ``snapshot_controller_operations_in_flight`` (gauge): operations started and not finished.
  Go's periodic refresh of it is cancelled right after it starts; here it is set on every change.

The operations are observed from the informer events (the object's own transitions), not from
the controller's writes, so they also cover what another writer changed. Start times live in
memory: after a restart, operations already under way are not timed (as in Go).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.kube import objects as o
from csi_sidecars.runtime.metrics import Gauge, Histogram, Registry
from csi_sidecars.snapshotcontroller import objects as so

Obj = Mapping[str, Any]

BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600)
UNKNOWN_DRIVER = "unknown"
DYNAMIC = "dynamic"
PRE_PROVISIONED = "pre-provisioned"
SUCCESS = "success"
CANCEL = "cancel"

CREATE = "CreateSnapshot"
CREATE_AND_READY = "CreateSnapshotAndReady"
DELETE = "DeleteSnapshot"
CREATE_GROUP = "CreateGroupSnapshot"
CREATE_GROUP_AND_READY = "CreateGroupSnapshotAndReady"
DELETE_GROUP = "DeleteGroupSnapshot"


@dataclass(frozen=True, slots=True)
class _Op:
    driver: str
    snapshot_type: str
    start: float


class OperationMetrics:
    """The two metric families and the operations in flight, by (operation, object uid)."""

    def __init__(self, registry: Registry, clock: Callable[[], float] = time.monotonic) -> None:
        """Register the families in ``registry``."""
        self.latency = Histogram(
            "snapshot_controller_operation_total_seconds",
            "[ALPHA] Total number of seconds spent by the controller on an operation",
            ["driver_name", "operation_name", "snapshot_type", "operation_status"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "snapshot_controller_operations_in_flight",
            "[ALPHA] Total number of operations in flight",
            registry=registry,
        )
        self._clock = clock
        self._ops: dict[tuple[str, str], _Op] = {}

    def __len__(self) -> int:
        return len(self._ops)

    def start(self, name: str, uid: str, driver: str, snapshot_type: str) -> None:
        """Note the start of an operation (a second start keeps the first time)."""
        if uid and (name, uid) not in self._ops:
            self._ops[(name, uid)] = _Op(driver or UNKNOWN_DRIVER, snapshot_type, self._clock())
            self.in_flight.set(len(self._ops))

    def record(self, name: str, uid: str, status: str = SUCCESS, driver: str = "") -> None:
        """Observe the end of an operation (nothing when it was not started)."""
        op = self._ops.pop((name, uid), None)
        if op is None:
            return
        took = self._clock() - op.start
        label = op.driver if driver in ("", UNKNOWN_DRIVER) else driver
        self.latency.labels(label, name, op.snapshot_type, status).observe(took)
        cancels = {
            DELETE: (CREATE, CREATE_AND_READY),
            DELETE_GROUP: (CREATE_GROUP, CREATE_GROUP_AND_READY),
        }
        for create in cancels.get(name, ()):
            pending = self._ops.pop((create, uid), None)
            if pending is not None:
                self.latency.labels(pending.driver, create, pending.snapshot_type, CANCEL).observe(
                    took
                )
        self.in_flight.set(len(self._ops))

    # -- transitions of the objects ----------------------------------------------------------

    def observe(self, old: Obj | None, new: Obj, driver: str, *, group: bool = False) -> None:
        """A (group) snapshot was added or changed from ``old`` to ``new``.

        Args:
            old: the previous version (None when it was just added).
            new: the current version.
            driver: its driver, as far as known ("" when not).
            group: a VolumeGroupSnapshot rather than a VolumeSnapshot.
        """
        create, ready, delete = (
            (CREATE_GROUP, CREATE_GROUP_AND_READY, DELETE_GROUP)
            if group
            else (CREATE, CREATE_AND_READY, DELETE)
        )
        uid = o.uid(new)
        static = (so.group_source_content(new) if group else so.source_content(new)) is not None
        kind = PRE_PROVISIONED if static else DYNAMIC
        if o.is_deleting(new):
            self.start(delete, uid, driver, kind)
            return
        if not so.is_created(new):
            self.start(create, uid, driver, kind)
        elif old is None or not so.is_created(old):
            self.record(create, uid, SUCCESS, driver)
        if not so.is_ready(new):
            self.start(ready, uid, driver, kind)
        elif old is None or not so.is_ready(old):
            self.record(ready, uid, SUCCESS, driver)

    def deleted(self, obj: Obj, driver: str, *, group: bool = False) -> None:
        """A (group) snapshot is gone: its deletion succeeded, its creation was cancelled."""
        self.record(DELETE_GROUP if group else DELETE, o.uid(obj), SUCCESS, driver)
        for name in (CREATE_GROUP, CREATE_GROUP_AND_READY) if group else (CREATE, CREATE_AND_READY):
            self._ops.pop((name, o.uid(obj)), None)
        self.in_flight.set(len(self._ops))
