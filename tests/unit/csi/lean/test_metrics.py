"""The prometheus-free CSI histogram renders what prometheus_client renders (minus _created)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from csi_sidecars.csi.lean.metrics import CONTENT_TYPE, OperationMetrics
from csi_sidecars.csi.lean.status import RpcError
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.runtime.metrics import format_value

# (driver name set before the call, method, error code or None, seconds)
CALLS = [
    (None, "/csi.v1.Identity/GetPluginInfo", None, 0.00001),
    ("d.example.com", "/csi.v1.Identity/Probe", None, 0.003),
    ("d.example.com", "/csi.v1.Identity/Probe", None, 0.3),
    ("d.example.com", "/csi.v1.Identity/Probe", 9, 0.1),
    ("d.example.com", "/csi.v1.Identity/Probe", 4, 3.0),
    ("d.example.com", "/csi.v1.Identity/Probe", 14, 700.0),
    ('we"ird\\name\n', "/csi.v1.Identity/Probe", None, 1.0),
]


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        samples = [
            (s.name, dict(s.labels), s.value)
            for s in family.samples
            if not s.name.endswith("_created")
        ]
        if samples:
            out[family.name] = samples
    return out


def test_same_samples_as_prometheus_client() -> None:
    import grpc

    lean = OperationMetrics()
    reference = CSIMetrics()
    for driver, method, code, seconds in CALLS:
        if driver is not None:
            lean.set_driver_name(driver)
            reference.set_driver_name(driver)
        err = None
        if code is not None:
            err = grpc.aio.AioRpcError(
                next(c for c in grpc.StatusCode if c.value[0] == code),
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
            )
        name = "OK" if code is None else RpcError(code, "").code_name
        lean.record(method, name, seconds)
        reference.record(method, err, seconds)
    body, content_type = lean.render()
    ours = _families(body.decode())
    theirs = _families(reference.render()[0].decode())
    start = theirs.pop("process_start_time_seconds")
    assert ours.pop("process_start_time_seconds")[0][2] == pytest.approx(start[0][2], abs=1)
    assert ours == theirs
    assert content_type == CONTENT_TYPE
    # Line for line like prometheus_client too, which the component tests match exactly.
    ref_lines = [
        line for line in reference.render()[0].decode().splitlines() if "_created" not in line
    ]
    for line in body.decode().splitlines():
        if not line.startswith("process_start_time_seconds"):
            assert line in ref_lines


def test_counts_and_sample_lines() -> None:
    metrics = OperationMetrics(process_start_time=False)
    metrics.record("/csi.v1.Identity/GetPluginInfo", "OK", 0.01)
    metrics.set_driver_name("d")
    metrics.record("/csi.v1.Identity/Probe", "FailedPrecondition", 0.2)
    metrics.record("/csi.v1.Identity/Probe", "FailedPrecondition", 0.2)
    assert metrics.count("/csi.v1.Identity/Probe", "FailedPrecondition") == 2
    assert metrics.count("/csi.v1.Identity/GetPluginInfo", "OK", "unknown-driver") == 1
    assert metrics.count("/csi.v1.Identity/Probe", "OK") == 0
    text = metrics.render()[0].decode()
    assert (
        'csi_sidecar_operations_seconds_count{driver_name="d",grpc_status_code='
        '"FailedPrecondition",method_name="/csi.v1.Identity/Probe"} 2.0'
    ) in text.splitlines()
    assert (
        'csi_sidecar_operations_seconds_bucket{driver_name="d",grpc_status_code='
        '"FailedPrecondition",le="0.1",method_name="/csi.v1.Identity/Probe"} 0.0'
    ) in text.splitlines()
    assert "process_start_time_seconds" not in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1.0"),
        (0.25, "0.25"),
        (1e-05, "1e-05"),
        (600, "600.0"),
        (123456.5, "123456.5"),
        (1234567.0, "1.234567e+06"),
        (1000000.0, "1e+06"),
        (1796121362.08, "1.79612136208e+09"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_format_value_matches_prometheus_client(value: float, text: str) -> None:
    from prometheus_client.utils import floatToGoString

    assert format_value(value) == text == floatToGoString(value)
