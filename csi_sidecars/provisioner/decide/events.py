"""The Kubernetes events of provisioning and deletion, with Go's reasons and message formats.

Each function returns a :class:`~csi_sidecars.kube.objects.Event` (type, reason, message); the
executor records it on the object. Messages never contain secret data: the error texts passed
in name secrets only by namespace/name.
"""

from __future__ import annotations

from csi_sidecars.kube.objects import Event, normal, warning

__all__ = [
    "Event",
    "external_populator",
    "external_provisioning",
    "provisioning",
    "provisioning_cleanup_failed",
    "provisioning_failed",
    "provisioning_failed_infeasible",
    "provisioning_succeeded",
    "volume_failed_delete",
]


def provisioning(namespace: str, name: str) -> Event:
    """Emitted on the PVC before every provisioning attempt."""
    return normal(
        "Provisioning",
        f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
    )


def external_populator() -> Event:
    """Emitted on the PVC when its data source is neither a PVC nor a VolumeSnapshot."""
    return normal("Provisioning", "Assuming an external populator will provision the volume")


def provisioning_failed(message: str) -> Event:
    """Emitted on the PVC for a failed attempt; ``message`` is the error text."""
    return warning("ProvisioningFailed", message)


def provisioning_failed_infeasible(message: str) -> Event:
    """Emitted on the PVC when the driver answered InvalidArgument (retries are delayed)."""
    return warning(
        "ProvisioningFailed",
        f"Volume provisioning failed with infeasible error. Retries will be delayed. {message}",
    )


def provisioning_succeeded(pv_name: str) -> Event:
    """Emitted on the PVC once its PV is saved."""
    return normal("ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}")


def volume_failed_delete(message: str) -> Event:
    """Emitted on the PV when deleting its volume failed."""
    return warning("VolumeFailedDelete", message)


def provisioning_cleanup_failed(message: str) -> Event:
    """Emitted on the PVC when a volume could not be cleaned up and may be orphaned."""
    return warning("ProvisioningCleanupFailed", message)


def external_provisioning(provisioner: str) -> Event:
    """The PVC event kube-controller-manager emits while waiting for an external provisioner.

    The sidecar does not emit it (the PV controller does); it is here so tests and tools can
    match the full event sequence of a claim.
    """
    return normal(
        "ExternalProvisioning",
        f"Waiting for a volume to be created either by the external provisioner '{provisioner}' "
        "or manually by the system administrator. If volume creation is delayed, please verify "
        "that the provisioner is running and correctly registered.",
    )
