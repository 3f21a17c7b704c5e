"""Our metrics render what prometheus_client renders for the same families, minus ``_created``.

prometheus_client is a test dependency only: it is the reference the text format is checked
against, for counters, gauges and histograms with and without labels, label values that need
escaping, custom collectors, and large and odd values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import prometheus_client as pc
import pytest
from prometheus_client.exposition import generate_latest

from csi_sidecars.runtime import metrics as ours


def _reference(text: bytes) -> list[str]:
    """prometheus_client's lines without its ``_created`` families."""
    lines = text.decode().splitlines()
    return [line for line in lines if "_created" not in line]


def _both(build: Callable[[Any, Any], None]) -> tuple[list[str], list[str]]:
    """Run ``build(module, registry)`` on both libraries; return (ours, theirs) lines."""
    reg = ours.Registry()
    build(ours, reg)
    ref = pc.CollectorRegistry()
    build(pc, ref)
    return ours.render(reg).decode().splitlines(), _reference(generate_latest(ref))


def test_counters_gauges_histograms_render_line_for_line() -> None:
    def build(lib: Any, reg: Any) -> None:
        adds = lib.Counter("workqueue_adds", "Total number of adds", ["name"], registry=reg)
        adds.labels("csi-attacher-va").inc()
        adds.labels("other").inc(2.5)
        depth = lib.Gauge("workqueue_depth", "Current depth", ["name"], registry=reg)
        depth.labels("q").set(7)
        depth.labels("q").dec()
        lib.Gauge("process_start_time_seconds", "Start time.", registry=reg).set(1.7773e9)
        lat = lib.Histogram(
            "operations_seconds",
            'HELP with a \\ backslash\nand a newline and "quotes"',
            ["driver_name", "method_name"],
            registry=reg,
            buckets=(0.1, 0.25, 1, 300),
            namespace="csi_sidecar",
        )
        lat.labels('drv "x"\\y\n', "/csi.v1.Controller/CreateVolume").observe(0.2)
        lat.labels("drv", "/csi.v1.Identity/Probe").observe(500)
        lib.Histogram("plain_seconds", "No labels, default buckets.", registry=reg).observe(3)
        lib.Counter("things_total", "Given with _total.", registry=reg).inc(3)
        lib.Counter("unused", "Labelled, no child yet.", ["a"], registry=reg)

    mine, theirs = _both(build)
    assert mine == theirs


@pytest.mark.parametrize(
    "value", [0, 1, 0.25, 123456.0, 1234567.0, 1.7773e9, 1e-7, -3.5, math.inf, -math.inf]
)
def test_values_format_as_prometheus_client(value: float) -> None:
    def build(lib: Any, reg: Any) -> None:
        lib.Gauge("g", "A gauge.", registry=reg).set(value)

    mine, theirs = _both(build)
    assert mine == theirs


def test_custom_collector_families() -> None:
    class Mine:
        def collect(self) -> Any:
            yield ours.GaugeFamily("goal", "Objects wanted.", value=3)
            family = ours.GaugeFamily("per_pool", "Per pool.", labels=["pool"])
            family.add_metric(["a"], 1)
            family.add_metric(["b"], 2)
            yield family

    class Theirs:
        def collect(self) -> Any:
            from prometheus_client.core import GaugeMetricFamily

            yield GaugeMetricFamily("goal", "Objects wanted.", value=3)
            family = GaugeMetricFamily("per_pool", "Per pool.", labels=["pool"])
            family.add_metric(["a"], 1)
            family.add_metric(["b"], 2)
            yield family

    reg = ours.Registry()
    reg.register(Mine())
    ref = pc.CollectorRegistry()
    ref.register(Theirs())
    assert ours.render(reg).decode().splitlines() == _reference(generate_latest(ref))


def test_get_sample_value_and_errors() -> None:
    reg = ours.Registry()
    c = ours.Counter("c", "C.", ["x"], registry=reg)
    c.labels("1").inc()
    assert reg.get_sample_value("c_total", {"x": "1"}) == 1
    assert reg.get_sample_value("c_total", {"x": "2"}) is None
    with pytest.raises(ValueError, match="duplicated"):
        ours.Counter("c", "again", registry=reg)
    with pytest.raises(ValueError, match="non-negative"):
        c.labels("1").inc(-1)
    with pytest.raises(ValueError, match="label count"):
        c.labels("1", "2")
    with pytest.raises(ValueError, match="has labels"):
        c.inc()


def test_no_created_series_unlike_prometheus_client() -> None:
    reg = ours.Registry()
    ours.Counter("c", "C.", registry=reg).inc()
    ours.Histogram("h", "H.", registry=reg).observe(1)
    assert "_created" not in ours.render(reg).decode()


def test_controller_roles_do_not_import_prometheus_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, csi_sidecars.cli, csi_sidecars.attacher.command, "
        "csi_sidecars.provisioner.command, csi_sidecars.snapshotter.command, "
        "csi_sidecars.resizer.command, csi_sidecars.snapshotcontroller.command, "
        "csi_sidecars.controller.context; "
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
