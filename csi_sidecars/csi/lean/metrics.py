"""The CSI call histogram of the node roles, without prometheus_client.

``csi_sidecar_operations_seconds`` with the Go sidecars' name, HELP text, labels and buckets, and
``process_start_time_seconds``, rendered in the Prometheus text format exactly as
:mod:`csi_sidecars.csi.metrics` renders them (labels sorted, ``le`` among them, values as
prometheus_client writes them), minus the ``_created`` series that only prometheus_client adds.
prometheus_client itself costs the livenessprobe 3 MiB and imports ``ssl``, ``urllib.request``,
``wsgiref`` and threads for its own servers, none of which a node role uses. Both this and
:mod:`csi_sidecars.csi.metrics` are built on :mod:`csi_sidecars.runtime.metrics`; the latter
takes its constants from here.
"""

from __future__ import annotations

import os
import time

from csi_sidecars.runtime.metrics import (
    CONTENT_TYPE,
    Gauge,
    Histogram,
    Registry,
    render,
)

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


#: The histogram's label names, in Go's order.
LABELS = ("driver_name", "method_name", "grpc_status_code")


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
        self.registry = Registry()
        self._operations = Histogram(self.name, HELP, LABELS, self.registry, BUCKETS)
        if process_start_time:
            start = Gauge("process_start_time_seconds", START_TIME_HELP, registry=self.registry)
            start.set(process_start_seconds())

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
        self._operations.labels(self.driver_name, method, code_name).observe(seconds)

    def count(self, method: str, code_name: str, driver_name: str | None = None) -> int:
        """How many calls of ``method`` ended with ``code_name`` (for tests and checks)."""
        driver = self.driver_name if driver_name is None else driver_name
        labels = dict(zip(LABELS, (driver, method, code_name), strict=True))
        found = self.registry.get_sample_value(f"{self.name}_count", labels)
        return 0 if found is None else int(found)

    def render(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its Content-Type."""
        return render(self.registry), CONTENT_TYPE
