"""The provisioning and deletion metric families of sig-storage-lib-external-provisioner.

Names, HELP texts and labels as the Go library registers them (subsystem ``controller``):
``controller_persistentvolumeclaim_provision_{total,failed_total,duration_seconds}{class,
source}`` and ``controller_persistentvolume_delete_{total,failed_total,duration_seconds}{class}``.
``source`` is the claim's ``dataSource.kind`` ("" without one). Histograms use Prometheus'
default buckets, as Go's ``prometheus.DefBuckets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.kube.objects import spec
from csi_sidecars.runtime.metrics import Counter, Histogram, Registry

SUBSYSTEM = "controller"
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def claim_source(pvc: Mapping[str, Any]) -> str:
    """The ``source`` label of a claim: its ``dataSource.kind`` or ""."""
    src = spec(pvc).get("dataSource")
    return str(src.get("kind") or "") if isinstance(src, dict) else ""


class ProvisionerMetrics:
    """The six ``controller_*`` families, registered in one registry."""

    def __init__(self, registry: Registry) -> None:
        """Register the families in ``registry``."""
        claim_labels = ["class", "source"]
        self.provision_total = Counter(
            "persistentvolumeclaim_provision",
            "Total number of persistent volumes provisioned succesfully. Broken down by storage "
            "class name.",
            claim_labels,
            subsystem=SUBSYSTEM,
            registry=registry,
        )
        self.provision_failed_total = Counter(
            "persistentvolumeclaim_provision_failed",
            "Total number of persistent volume provision failed attempts. Broken down by "
            "storage class name.",
            claim_labels,
            subsystem=SUBSYSTEM,
            registry=registry,
        )
        self.provision_duration = Histogram(
            "persistentvolumeclaim_provision_duration_seconds",
            "Latency in seconds to provision persistent volumes. Failed provisioning attempts "
            "are ignored. Broken down by storage class name.",
            claim_labels,
            subsystem=SUBSYSTEM,
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )
        self.delete_total = Counter(
            "persistentvolume_delete",
            "Total number of persistent volumes deleted succesfully. Broken down by storage "
            "class name.",
            ["class"],
            subsystem=SUBSYSTEM,
            registry=registry,
        )
        self.delete_failed_total = Counter(
            "persistentvolume_delete_failed",
            "Total number of persistent volume delete failed attempts. Broken down by storage "
            "class name.",
            ["class"],
            subsystem=SUBSYSTEM,
            registry=registry,
        )
        self.delete_duration = Histogram(
            "persistentvolume_delete_duration_seconds",
            "Latency in seconds to delete persistent volumes. Failed deletion attempts are "
            "ignored. Broken down by storage class name.",
            ["class"],
            subsystem=SUBSYSTEM,
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )

    def provisioned(self, storage_class: str, source: str, seconds: float) -> None:
        """Count one successful provisioning and observe its duration."""
        self.provision_total.labels(storage_class, source).inc()
        self.provision_duration.labels(storage_class, source).observe(seconds)

    def provision_failed(self, storage_class: str, source: str) -> None:
        """Count one failed provisioning attempt."""
        self.provision_failed_total.labels(storage_class, source).inc()

    def deleted(self, storage_class: str, seconds: float) -> None:
        """Count one successful deletion and observe its duration."""
        self.delete_total.labels(storage_class).inc()
        self.delete_duration.labels(storage_class).observe(seconds)

    def delete_failed(self, storage_class: str) -> None:
        """Count one failed deletion attempt."""
        self.delete_failed_total.labels(storage_class).inc()
