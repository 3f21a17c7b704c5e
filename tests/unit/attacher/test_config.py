"""Handler selection from driver capabilities."""

from __future__ import annotations

import pytest

from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.csi.messages import csi_pb2

SVC = csi_pb2.PluginCapability.Service
RPC = csi_pb2.ControllerServiceCapability.RPC
DRIVER = "d.example.com"


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
    cfg = AttacherConfig.from_capabilities(DRIVER, plugin, ctrl)
    assert cfg.trivial is trivial
    assert cfg.finalizer == "external-attacher/d-example-com"


def test_csi_handler_features():
    ctrl = [
        RPC.PUBLISH_UNPUBLISH_VOLUME,
        RPC.PUBLISH_READONLY,
        RPC.SINGLE_NODE_MULTI_WRITER,
        RPC.LIST_VOLUMES,
        RPC.LIST_VOLUMES_PUBLISHED_NODES,
    ]
    cfg = AttacherConfig.from_capabilities(
        DRIVER, [SVC.CONTROLLER_SERVICE], ctrl, default_fstype="ext4"
    )
    assert (cfg.trivial, cfg.supports_publish_readonly, cfg.supports_single_node_multi_writer) == (
        False,
        True,
        True,
    )
    assert cfg.supports_list_published_nodes and cfg.default_fstype == "ext4"
    assert cfg.error_codes and cfg.record_detach_info


def test_list_published_nodes_needs_both_capabilities():
    for ctrl in ([RPC.LIST_VOLUMES], [RPC.LIST_VOLUMES_PUBLISHED_NODES]):
        cfg = AttacherConfig.from_capabilities(
            DRIVER, [SVC.CONTROLLER_SERVICE], [RPC.PUBLISH_UNPUBLISH_VOLUME, *ctrl]
        )
        assert not cfg.supports_list_published_nodes


def test_error_code_gate():
    cfg = AttacherConfig.from_capabilities(
        DRIVER,
        [SVC.CONTROLLER_SERVICE],
        [RPC.PUBLISH_UNPUBLISH_VOLUME],
        feature_gates={"MutableCSINodeAllocatableCount": False},
    )
    assert not cfg.error_codes
