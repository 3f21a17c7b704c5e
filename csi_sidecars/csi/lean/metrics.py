"""The CSI call histogram of the node roles, without prometheus_client.

``csi_sidecar_operations_seconds`` with the Go sidecars' name, HELP text, labels and buckets, and
``process_start_time_seconds``, rendered in the Prometheus text format exactly as
:mod:`csi_sidecars.csi.metrics` renders them (labels sorted, ``le`` among them, values as
prometheus_client writes them), minus the ``_created`` series that only prometheus_client adds.
prometheus_client itself costs the livenessprobe 3 MiB and imports ``ssl``, ``urllib.request``,
``wsgiref`` and threads for its own servers, none of which a node role uses; one histogram and one
gauge are a few dozen lines. :mod:`csi_sidecars.csi.metrics` takes its constants from here.
"""

from __future__ import annotations

import math
import os
import time

from csi_sidecars.runtime.metrics import CONTENT_TYPE, format_value

SIDECAR_SUBSYSTEM = "csi_sidecar"
PLUGIN_SUBSYSTEM = "csi_plugin"
UNKNOWN_DRIVER = "unknown-driver"
HELP = "[ALPHA] Container Storage Interface operation duration with gRPC error code status total"
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600)
START_TIME_HELP = "[ALPHA] Start time of the process since unix epoch in seconds."

_IMPORT_TIME = time.time()


def process_start_seconds() -> float:
    """The process start time in seconds since the epoch (from /proc when available)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        start_ticks = int(fields[19])
        with open("/proc/stat", encoding="ascii") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORT_TIME


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: dict[str, str]) -> str:
    return ",".join(f'{name}="{_escape(pairs[name])}"' for name in sorted(pairs))


class _Series:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0
        self.sum = 0.0


class OperationMetrics:
    """The CSI operation metrics of one process (the lean twin of ``CSIMetrics``).

    Args:
        subsystem: metric name prefix, ``csi_sidecar`` (sidecars) or ``csi_plugin`` (drivers).
        process_start_time: also render ``process_start_time_seconds``.
    """

    def __init__(
        self, *, subsystem: str = SIDECAR_SUBSYSTEM, process_start_time: bool = True
    ) -> None:
        """Start with no observations and ``driver_name="unknown-driver"``."""
        self.name = f"{subsystem}_operations_seconds"
        self.driver_name = UNKNOWN_DRIVER
        self.start_time = process_start_seconds() if process_start_time else None
        self._series: dict[tuple[str, str, str], _Series] = {}

    def set_driver_name(self, name: str) -> None:
        """Use ``name`` as ``driver_name`` for calls recorded from now on."""
        self.driver_name = name

    def record(self, method: str, code_name: str, seconds: float) -> None:
        """Observe one finished call.

        Args:
            method: the full gRPC method, e.g. ``/csi.v1.Identity/Probe``.
            code_name: the Go status name (``OK``, ``DeadlineExceeded``, ``unknown-non-grpc``).
            seconds: how long the call took.
        """
        key = (self.driver_name, method, code_name)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        index = len(BUCKETS)
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                index = i
                break
        series.counts[index] += 1
        series.total += 1
        series.sum += seconds

    def count(self, method: str, code_name: str, driver_name: str | None = None) -> int:
        """How many calls of ``method`` ended with ``code_name`` (for tests and checks)."""
        key = (self.driver_name if driver_name is None else driver_name, method, code_name)
        series = self._series.get(key)
        return 0 if series is None else series.total

    def render(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its Content-Type."""
        name = self.name
        out = [f"# HELP {name} {HELP}\n", f"# TYPE {name} histogram\n"]
        for (driver, method, code), series in self._series.items():
            labels = {"driver_name": driver, "method_name": method, "grpc_status_code": code}
            cumulative = 0
            for bound, count in zip((*BUCKETS, math.inf), series.counts, strict=True):
                cumulative += count
                pairs = _labels({**labels, "le": format_value(bound)})
                out.append(f"{name}_bucket{{{pairs}}} {format_value(cumulative)}\n")
            pairs = _labels(labels)
            out.append(f"{name}_count{{{pairs}}} {format_value(series.total)}\n")
            out.append(f"{name}_sum{{{pairs}}} {format_value(series.sum)}\n")
        if self.start_time is not None:
            out.append(f"# HELP process_start_time_seconds {START_TIME_HELP}\n")
            out.append("# TYPE process_start_time_seconds gauge\n")
            out.append(f"process_start_time_seconds {format_value(self.start_time)}\n")
        return "".join(out).encode("utf-8"), CONTENT_TYPE
