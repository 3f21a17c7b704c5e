"""CSI call metrics: the ``csi_sidecar_operations_seconds`` histogram of csi-lib-utils.

Every CSI call a sidecar makes is observed in one histogram with the Go sidecars' name, HELP text,
labels (``driver_name``, ``method_name``, ``grpc_status_code`` and, for CSI-migration drivers,
``migrated``) and buckets, next to ``process_start_time_seconds``, so existing dashboards keep
working. Each process owns a :class:`CSIMetrics` with its own ``CollectorRegistry`` (never the
global default), which keeps tests isolated; roles pass it to
:func:`csi_sidecars.csi.connection.connect` and serve :meth:`CSIMetrics.render` (or
``csi_sidecars.runtime.http.metrics_handler(m.registry)``) on ``--metrics-path``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from csi_sidecars.csi.codes import status_label
from csi_sidecars.csi.lean.metrics import (
    BUCKETS,
    HELP,
    PLUGIN_SUBSYSTEM,
    SIDECAR_SUBSYSTEM,
    START_TIME_HELP,
    UNKNOWN_DRIVER,
    process_start_seconds,
)
from csi_sidecars.runtime.metrics import CONTENT_TYPE, Gauge, Histogram, Registry, render

__all__ = [
    "BUCKETS",
    "HELP",
    "PLUGIN_SUBSYSTEM",
    "SIDECAR_SUBSYSTEM",
    "UNKNOWN_DRIVER",
    "CSIMetrics",
    "migrated",
]

_migrated: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "csi_migrated", default=None
)


@contextlib.contextmanager
def migrated(value: bool) -> Iterator[None]:
    """Mark CSI calls made inside the block as (not) migrated, for the ``migrated`` label.

    Only metrics created with ``with_migration=True`` have the label. Calls made outside any such
    block get an empty label value, as in Go when the context carries no migration info.
    """
    token = _migrated.set(value)
    try:
        yield
    finally:
        _migrated.reset(token)


class CSIMetrics:
    """The CSI operation metrics of one process.

    Args:
        registry: where to register; a fresh :class:`~csi_sidecars.runtime.metrics.Registry`
            when None.
        subsystem: metric name prefix, ``csi_sidecar`` (sidecars) or ``csi_plugin`` (drivers).
        with_migration: add the ``migrated`` label (see :func:`migrated`).
        process_start_time: also register ``process_start_time_seconds``.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        subsystem: str = SIDECAR_SUBSYSTEM,
        with_migration: bool = False,
        process_start_time: bool = True,
    ) -> None:
        """Create the histogram (and start-time gauge) in ``registry``."""
        self.registry = registry if registry is not None else Registry()
        self.driver_name = UNKNOWN_DRIVER
        self.with_migration = with_migration
        labels = ["driver_name", "method_name", "grpc_status_code"]
        if with_migration:
            labels.append("migrated")
        self.operations = Histogram(
            f"{subsystem}_operations_seconds",
            HELP,
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        if process_start_time:
            gauge = Gauge(
                "process_start_time_seconds",
                START_TIME_HELP,
                registry=self.registry,
            )
            gauge.set(process_start_seconds())

    def set_driver_name(self, name: str) -> None:
        """Use ``name`` as ``driver_name`` for calls recorded from now on."""
        self.driver_name = name

    def record(self, method: str, err: BaseException | None, seconds: float) -> None:
        """Observe one finished call.

        Args:
            method: the full gRPC method, e.g. ``/csi.v1.Controller/CreateVolume``.
            err: the call's error, None on success.
            seconds: how long the call took.
        """
        values = [self.driver_name, method, status_label(err)]
        if self.with_migration:
            flag = _migrated.get()
            values.append("" if flag is None else str(flag).lower())
        self.operations.labels(*values).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its Content-Type."""
        return render(self.registry), CONTENT_TYPE
