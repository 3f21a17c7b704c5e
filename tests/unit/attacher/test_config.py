"""Handler selection from the driver's capabilities (read from its DriverInfo, not copied)."""

from __future__ import annotations

import pytest

from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.controller.driver import DriverInfo
from csi_sidecars.csi.messages import csi_pb2

SVC = csi_pb2.PluginCapability.Service
RPC = csi_pb2.ControllerServiceCapability.RPC
DRIVER = "d.example.com"


def cfg(plugin: list[int], ctrl: list[int], **kwargs: object) -> AttacherConfig:
    return AttacherConfig(DriverInfo(DRIVER, frozenset(plugin), frozenset(ctrl)), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("plugin", "ctrl", "trivial"),
    [
        ([], [RPC.PUBLISH_UNPUBLISH_VOLUME], True),
        ([SVC.CONTROLLER_SERVICE], [], True),
        ([SVC.CONTROLLER_SERVICE], [RPC.CREATE_DELETE_VOLUME, RPC.LIST_VOLUMES], True),
        ([SVC.CONTROLLER_SERVICE], [RPC.PUBLISH_UNPUBLISH_VOLUME], False),
    ],
)
def test_trivial_handler_selection(plugin: list[int], ctrl: list[int], trivial: bool):
    config = cfg(plugin, ctrl)
    assert config.trivial is trivial
    assert config.finalizer == "external-attacher/d-example-com"
    assert config.driver_name == DRIVER


def test_csi_handler_features():
    ctrl = [
        RPC.PUBLISH_UNPUBLISH_VOLUME,
        RPC.PUBLISH_READONLY,
        RPC.SINGLE_NODE_MULTI_WRITER,
        RPC.LIST_VOLUMES,
        RPC.LIST_VOLUMES_PUBLISHED_NODES,
    ]
    config = cfg([SVC.CONTROLLER_SERVICE], ctrl, default_fstype="ext4")
    assert (config.trivial, config.publish_readonly, config.single_node_multi_writer) == (
        False,
        True,
        True,
    )
    assert config.list_published_nodes and config.default_fstype == "ext4"
    assert config.error_codes and config.record_detach_info and config.pod_events
    plain = cfg([SVC.CONTROLLER_SERVICE], [RPC.PUBLISH_UNPUBLISH_VOLUME])
    assert (plain.publish_readonly, plain.single_node_multi_writer) == (False, False)


def test_list_published_nodes_needs_both_capabilities_and_the_csi_handler():
    for ctrl in ([RPC.LIST_VOLUMES], [RPC.LIST_VOLUMES_PUBLISHED_NODES]):
        config = cfg([SVC.CONTROLLER_SERVICE], [RPC.PUBLISH_UNPUBLISH_VOLUME, *ctrl])
        assert not config.list_published_nodes
    listing = [RPC.LIST_VOLUMES, RPC.LIST_VOLUMES_PUBLISHED_NODES]
    assert not cfg([SVC.CONTROLLER_SERVICE], listing).list_published_nodes


def test_empty_driver_name_has_no_finalizer():
    with pytest.raises(ValueError):
        _ = AttacherConfig(DriverInfo("")).finalizer


def test_error_code_gate():
    driver = DriverInfo(
        DRIVER, frozenset({SVC.CONTROLLER_SERVICE}), frozenset({RPC.PUBLISH_UNPUBLISH_VOLUME})
    )
    off = AttacherConfig.create(driver, feature_gates={"MutableCSINodeAllocatableCount": False})
    assert not off.error_codes
    on = AttacherConfig.create(driver, default_fstype="xfs")
    assert on.error_codes and on.default_fstype == "xfs" and on.driver is driver
