"""What the attacher's decisions depend on besides the objects: the driver and a few flags.

The driver's name and capabilities are the :class:`~csi_sidecars.controller.DriverInfo` read
once at start-up (``ctx.driver``); :class:`AttacherConfig` keeps a reference to it and answers
the Go handler selection from it: no plugin ``CONTROLLER_SERVICE`` or no controller
``PUBLISH_UNPUBLISH_VOLUME`` -> the trivial handler (VolumeAttachments are marked attached,
nothing is published, no finalizers); otherwise the CSI handler, with ``PUBLISH_READONLY``,
``SINGLE_NODE_MULTI_WRITER`` and ``LIST_VOLUMES`` + ``LIST_VOLUMES_PUBLISHED_NODES``
(reconciliation) taken into account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from csi_sidecars.attacher import names
from csi_sidecars.controller.driver import DriverInfo
from csi_sidecars.csi.messages import csi_pb2

_CTRL = csi_pb2.ControllerServiceCapability.RPC


@dataclass(frozen=True, slots=True)
class AttacherConfig:
    """Inputs of every decision that do not come from the API objects.

    Attributes:
        driver: the driver's name (``spec.attacher`` must equal it) and capabilities.
        default_fstype: ``--default-fstype``.
        error_codes: write ``errorCode`` into attach/detach errors (gate
            ``MutableCSINodeAllocatableCount``, on by default).
        record_detach_info: write our volume-handle / secret-ref annotations (see
            :mod:`csi_sidecars.attacher.names`) so detach works without the PV.
        pod_events: also put failure events on the pods that use the volume (needs ``list``
            on pods; see :func:`csi_sidecars.attacher.controller.check_event_permissions`).
    """

    driver: DriverInfo
    default_fstype: str = ""
    error_codes: bool = True
    record_detach_info: bool = True
    pod_events: bool = True

    @classmethod
    def create(
        cls,
        driver: DriverInfo,
        *,
        default_fstype: str = "",
        feature_gates: Mapping[str, bool] | None = None,
    ) -> AttacherConfig:
        """The configuration for ``driver`` and the parsed flags (missing gates: defaults)."""
        gates = feature_gates or {}
        return cls(
            driver,
            default_fstype=default_fstype,
            error_codes=gates.get(names.GATE_MUTABLE_CSINODE_ALLOCATABLE_COUNT, True),
        )

    @property
    def driver_name(self) -> str:
        """The CSI driver name (``GetPluginInfo``)."""
        return self.driver.name

    @property
    def finalizer(self) -> str:
        """``external-attacher/<sanitised driver>``."""
        return names.finalizer_name(self.driver.name)

    @property
    def trivial(self) -> bool:
        """Use the trivial handler: the driver cannot ControllerPublish."""
        return not (
            self.driver.has_controller_service
            and self.driver.has_controller(_CTRL.PUBLISH_UNPUBLISH_VOLUME)
        )

    @property
    def publish_readonly(self) -> bool:
        """Controller capability ``PUBLISH_READONLY``."""
        return self.driver.has_controller(_CTRL.PUBLISH_READONLY)

    @property
    def single_node_multi_writer(self) -> bool:
        """Controller capability ``SINGLE_NODE_MULTI_WRITER``."""
        return self.driver.has_controller(_CTRL.SINGLE_NODE_MULTI_WRITER)

    @property
    def list_published_nodes(self) -> bool:
        """``LIST_VOLUMES`` and ``LIST_VOLUMES_PUBLISHED_NODES``: the ListVolumes reconciler."""
        return not self.trivial and (
            self.driver.has_controller(_CTRL.LIST_VOLUMES)
            and self.driver.has_controller(_CTRL.LIST_VOLUMES_PUBLISHED_NODES)
        )
