"""What the attacher's decisions depend on besides the objects: driver name, capabilities, flags.

:meth:`AttacherConfig.from_capabilities` applies the Go handler selection: no plugin
``CONTROLLER_SERVICE`` or no controller ``PUBLISH_UNPUBLISH_VOLUME`` -> the trivial handler
(VolumeAttachments are marked attached, nothing is published, no finalizers); otherwise the CSI
handler with ``PUBLISH_READONLY``, ``SINGLE_NODE_MULTI_WRITER`` and ``LIST_VOLUMES`` +
``LIST_VOLUMES_PUBLISHED_NODES`` (reconciliation) taken into account.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from csi_sidecars.attacher import names
from csi_sidecars.csi.messages import csi_pb2

_PLUGIN = csi_pb2.PluginCapability.Service
_CTRL = csi_pb2.ControllerServiceCapability.RPC


@dataclass(frozen=True, slots=True)
class AttacherConfig:
    """Inputs of every decision that do not come from the API objects.

    Attributes:
        driver_name: the CSI driver name (``GetPluginInfo``); ``spec.attacher`` must equal it.
        trivial: use the trivial handler (driver cannot ControllerPublish).
        supports_publish_readonly: controller capability ``PUBLISH_READONLY``.
        supports_single_node_multi_writer: controller capability ``SINGLE_NODE_MULTI_WRITER``.
        supports_list_published_nodes: ``LIST_VOLUMES`` and ``LIST_VOLUMES_PUBLISHED_NODES``;
            enables the ListVolumes reconciliation.
        default_fstype: ``--default-fstype``.
        error_codes: write ``errorCode`` into attach/detach errors (gate
            ``MutableCSINodeAllocatableCount``, on by default).
        record_detach_info: write our volume-handle / secret-ref annotations (see
            :mod:`csi_sidecars.attacher.names`) so detach works without the PV.
    """

    driver_name: str
    trivial: bool = False
    supports_publish_readonly: bool = False
    supports_single_node_multi_writer: bool = False
    supports_list_published_nodes: bool = False
    default_fstype: str = ""
    error_codes: bool = True
    record_detach_info: bool = True

    @property
    def finalizer(self) -> str:
        """``external-attacher/<sanitised driver>``."""
        return names.finalizer_name(self.driver_name)

    @classmethod
    def from_capabilities(
        cls,
        driver_name: str,
        plugin_capabilities: Collection[int],
        controller_capabilities: Collection[int],
        *,
        default_fstype: str = "",
        feature_gates: Mapping[str, bool] | None = None,
        record_detach_info: bool = True,
    ) -> AttacherConfig:
        """Select the handler and features from the driver's capabilities (Go rules).

        Args:
            driver_name: the driver name.
            plugin_capabilities: ``PluginCapability.Service.Type`` values.
            controller_capabilities: ``ControllerServiceCapability.RPC.Type`` values (ignored
                without ``CONTROLLER_SERVICE``).
            default_fstype: ``--default-fstype``.
            feature_gates: parsed ``--feature-gates`` (missing gates take their defaults).
            record_detach_info: see the class attributes.
        """
        gates = feature_gates or {}
        error_codes = gates.get(names.GATE_MUTABLE_CSINODE_ALLOCATABLE_COUNT, True)
        if _PLUGIN.CONTROLLER_SERVICE not in plugin_capabilities:
            return cls(driver_name, trivial=True, error_codes=error_codes)
        ctrl = set(controller_capabilities)
        if _CTRL.PUBLISH_UNPUBLISH_VOLUME not in ctrl:
            return cls(driver_name, trivial=True, error_codes=error_codes)
        return cls(
            driver_name,
            supports_publish_readonly=_CTRL.PUBLISH_READONLY in ctrl,
            supports_single_node_multi_writer=_CTRL.SINGLE_NODE_MULTI_WRITER in ctrl,
            supports_list_published_nodes=(
                _CTRL.LIST_VOLUMES in ctrl and _CTRL.LIST_VOLUMES_PUBLISHED_NODES in ctrl
            ),
            default_fstype=default_fstype,
            error_codes=error_codes,
            record_detach_info=record_detach_info,
        )
