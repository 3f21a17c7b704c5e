"""csi_sidecar_operations_seconds: name, help, labels, buckets, code names, isolation."""

from __future__ import annotations

import time

import grpc
import grpc.aio

from csi_sidecars.csi.metrics import BUCKETS, CSIMetrics, migrated

NAME = "csi_sidecar_operations_seconds"
PROBE = "/csi.v1.Identity/Probe"


def _err(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata())


def _count(m: CSIMetrics, **labels: str) -> float | None:
    return m.registry.get_sample_value(f"{NAME}_count", labels)


def test_exposition_has_go_name_help_and_buckets() -> None:
    m = CSIMetrics()
    m.record(PROBE, None, 0.3)
    body, content_type = m.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert (
        f"# HELP {NAME} [ALPHA] Container Storage Interface operation duration with gRPC error "
        "code status total\n" in text
    )
    assert f"# TYPE {NAME} histogram" in text
    les = [
        float(line.split('le="')[1].split('"')[0])
        for line in text.splitlines()
        if line.startswith(f"{NAME}_bucket")
    ]
    assert les == [*map(float, BUCKETS), float("inf")]
    assert "# TYPE process_start_time_seconds gauge" in text


def test_labels_driver_method_and_go_code_names() -> None:
    m = CSIMetrics()
    m.record(PROBE, None, 0.01)
    m.record(PROBE, _err(grpc.StatusCode.DEADLINE_EXCEEDED), 0.01)
    m.set_driver_name("hostpath.csi.k8s.io")
    m.record("/csi.v1.Controller/CreateVolume", RuntimeError("x"), 0.01)
    m.record("/csi.v1.Controller/CreateVolume", _err(grpc.StatusCode.RESOURCE_EXHAUSTED), 0.01)
    assert _count(m, driver_name="unknown-driver", method_name=PROBE, grpc_status_code="OK") == 1
    assert (
        _count(
            m, driver_name="unknown-driver", method_name=PROBE, grpc_status_code="DeadlineExceeded"
        )
        == 1
    )
    create = "/csi.v1.Controller/CreateVolume"
    drv = "hostpath.csi.k8s.io"
    assert _count(m, driver_name=drv, method_name=create, grpc_status_code="unknown-non-grpc") == 1
    assert _count(m, driver_name=drv, method_name=create, grpc_status_code="ResourceExhausted") == 1


def test_duration_lands_in_the_right_bucket() -> None:
    m = CSIMetrics()
    m.record(PROBE, None, 3.0)
    labels = {"driver_name": "unknown-driver", "method_name": PROBE, "grpc_status_code": "OK"}
    bucket = f"{NAME}_bucket"
    assert m.registry.get_sample_value(bucket, {**labels, "le": "2.5"}) == 0
    assert m.registry.get_sample_value(bucket, {**labels, "le": "5.0"}) == 1
    assert m.registry.get_sample_value(f"{NAME}_sum", labels) == 3.0


def test_registries_are_isolated() -> None:
    a, b = CSIMetrics(), CSIMetrics()
    a.record(PROBE, None, 0.1)
    assert _count(b, driver_name="unknown-driver", method_name=PROBE, grpc_status_code="OK") is None


def test_migrated_label() -> None:
    m = CSIMetrics(with_migration=True)
    with migrated(True):
        m.record(PROBE, None, 0.1)
    m.record(PROBE, None, 0.1)
    base = {"driver_name": "unknown-driver", "method_name": PROBE, "grpc_status_code": "OK"}
    assert m.registry.get_sample_value(f"{NAME}_count", {**base, "migrated": "true"}) == 1
    assert m.registry.get_sample_value(f"{NAME}_count", {**base, "migrated": ""}) == 1


def test_process_start_time_is_plausible_and_optional() -> None:
    m = CSIMetrics()
    start = m.registry.get_sample_value("process_start_time_seconds")
    assert start is not None
    assert time.time() - 7 * 24 * 3600 < start <= time.time()
    assert (
        CSIMetrics(process_start_time=False).registry.get_sample_value("process_start_time_seconds")
        is None
    )


def test_plugin_subsystem() -> None:
    m = CSIMetrics(subsystem="csi_plugin")
    m.record(PROBE, None, 0.1)
    assert "csi_plugin_operations_seconds_count" in m.render()[0].decode()
