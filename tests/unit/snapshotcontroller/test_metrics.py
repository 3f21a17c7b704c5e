"""Operation metrics: Go's names, labels, buckets, the cancel status and the in-flight gauge."""

from __future__ import annotations

from csi_sidecars.runtime.metrics import Registry
from csi_sidecars.snapshotcontroller.metrics import OperationMetrics
from tests.unit.snapshotcontroller.fixtures import vs

DRIVER = "hostpath.csi.k8s.io"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def count(reg: Registry, op: str, status: str, kind: str = "dynamic") -> float | None:
    return reg.get_sample_value(
        "snapshot_controller_operation_total_seconds_count",
        {
            "driver_name": DRIVER,
            "operation_name": op,
            "snapshot_type": kind,
            "operation_status": status,
        },
    )


def total(reg: Registry, op: str, status: str) -> float | None:
    return reg.get_sample_value(
        "snapshot_controller_operation_total_seconds_sum",
        {
            "driver_name": DRIVER,
            "operation_name": op,
            "snapshot_type": "dynamic",
            "operation_status": status,
        },
    )


def test_create_then_ready_then_delete() -> None:
    reg, clock = Registry(), Clock()
    m = OperationMetrics(reg, clock)
    new = vs("s", "u", claim="c")
    m.observe(None, new, DRIVER)
    assert reg.get_sample_value("snapshot_controller_operations_in_flight") == 2
    clock.now += 3
    created = vs("s", "u", claim="c", created="2026-01-01T00:00:00Z", ready=False)
    m.observe(new, created, DRIVER)
    assert count(reg, "CreateSnapshot", "success") == 1
    assert total(reg, "CreateSnapshot", "success") == 3
    clock.now += 2
    ready = vs("s", "u", claim="c", created="2026-01-01T00:00:00Z", ready=True)
    m.observe(created, ready, DRIVER)
    assert total(reg, "CreateSnapshotAndReady", "success") == 5
    m.observe(ready, ready, DRIVER)  # a resync records nothing twice
    assert count(reg, "CreateSnapshotAndReady", "success") == 1
    deleting = vs("s", "u", claim="c", ready=True, created="x", finalizers=["f"], deleting=True)
    m.observe(ready, deleting, DRIVER)
    clock.now += 7
    m.deleted(deleting, DRIVER)
    assert total(reg, "DeleteSnapshot", "success") == 7
    assert reg.get_sample_value("snapshot_controller_operations_in_flight") == 0


def test_delete_during_create_is_a_cancel() -> None:
    reg, clock = Registry(), Clock()
    m = OperationMetrics(reg, clock)
    new = vs("s", "u", claim="c")
    m.observe(None, new, DRIVER)
    deleting = vs("s", "u", claim="c", finalizers=["f"], deleting=True)
    m.observe(new, deleting, DRIVER)
    clock.now += 4
    m.deleted(deleting, DRIVER)
    assert count(reg, "CreateSnapshot", "cancel") == 1
    assert count(reg, "CreateSnapshotAndReady", "cancel") == 1
    assert count(reg, "DeleteSnapshot", "success") == 1
    assert len(m) == 0


def test_unknown_driver_and_pre_provisioned() -> None:
    reg = Registry()
    m = OperationMetrics(reg, Clock())
    new = vs("s", "u", content="c")
    m.observe(None, new, "")
    m.observe(new, vs("s", "u", content="c", ready=True, created="x"), "")
    assert (
        reg.get_sample_value(
            "snapshot_controller_operation_total_seconds_count",
            {
                "driver_name": "unknown",
                "operation_name": "CreateSnapshot",
                "snapshot_type": "pre-provisioned",
                "operation_status": "success",
            },
        )
        == 1
    )


def test_buckets_are_gos() -> None:
    reg = Registry()
    m = OperationMetrics(reg, Clock())
    m.start("CreateSnapshot", "u", DRIVER, "dynamic")
    m.record("CreateSnapshot", "u")
    buckets = [
        s.labels["le"]
        for metric in reg.collect()
        if metric.name == "snapshot_controller_operation_total_seconds"
        for s in metric.samples
        if s.name.endswith("_bucket")
    ]
    assert buckets == [
        "0.1",
        "0.25",
        "0.5",
        "1.0",
        "2.5",
        "5.0",
        "10.0",
        "15.0",
        "30.0",
        "60.0",
        "120.0",
        "300.0",
        "600.0",
        "+Inf",
    ]
