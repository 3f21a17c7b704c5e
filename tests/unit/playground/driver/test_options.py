"""Command-line parsing, quantities and capability sets of the playground driver."""

from __future__ import annotations

import pytest

from csi_sidecars.playground.driver import caps
from csi_sidecars.playground.driver.options import (
    DriverOptions,
    parse_args,
    parse_quantity,
    socket_path,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1024", 1024), ("1Ki", 1024), ("1Gi", 1 << 30), ("10G", 10**10), ("1.5Mi", 1572864)],
)
def test_parse_quantity(text: str, value: int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Xi", "-1", "1 G i"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_defaults_match_hostpathplugin() -> None:
    opts = parse_args(["--nodeid", "n1"])
    assert opts.driver_name == "hostpath.csi.k8s.io"
    assert opts.endpoint == "unix:///tmp/csi.sock"
    assert opts.statedir == "/csi-data-dir"
    assert (opts.enable_attach, opts.enable_topology, opts.enable_volume_expansion) == (
        False,
        True,
        True,
    )
    assert opts.max_volume_size == 1 << 40
    assert opts.controller_service and opts.node_service


def test_go_style_flags() -> None:
    opts = parse_args(
        [
            "-endpoint=unix:///s/csi.sock",
            "-nodeid=n1",
            "--enable-attach",
            "--enable-topology=false",
            "-capacity=fast=1Gi",
            "--capacity",
            "slow=2Gi",
            "-maxvolumespernode=3",
            "--accepted-mutable-parameter-names=a,b",
            "--known-node=n2",
            "--remove-capability=LIST_VOLUMES_PUBLISHED_NODES",
            "-v=5",
        ]
    )
    assert opts.socket_path() == "/s/csi.sock"
    assert opts.enable_attach is True
    assert opts.enable_topology is False
    assert opts.capacity == {"fast": 1 << 30, "slow": 2 << 30}
    assert opts.max_volumes_per_node == 3
    assert opts.accepted_mutable_parameter_names == ["a", "b"]
    assert opts.known_nodes == ["n2"]
    assert opts.remove_capabilities == ["LIST_VOLUMES_PUBLISHED_NODES"]
    assert opts.v == 5


def test_node_capacity_flag() -> None:
    opts = parse_args(
        ["--nodeid=n1", "--capacity=slow=1Gi", "--node-capacity=n2:slow=2Gi",
         "--node-capacity=n2:fast=1Mi"]
    )  # fmt: skip
    assert opts.capacity == {"slow": 1 << 30}
    assert opts.node_capacity == {"n2": {"slow": 2 << 30, "fast": 1 << 20}}
    with pytest.raises(SystemExit):
        parse_args(["--nodeid=n1", "--node-capacity=slow=1Gi"])


def test_service_modes() -> None:
    ctrl = parse_args(["--nodeid=n", "--controller-service"])
    assert (ctrl.controller_service, ctrl.node_service) == (True, False)
    node = parse_args(["--nodeid=n", "--node-service"])
    assert (node.controller_service, node.node_service) == (False, True)
    none_off = parse_args(["--nodeid=n", "--node-service=false"])
    assert (none_off.controller_service, none_off.node_service) == (False, False)


@pytest.mark.parametrize(
    "argv",
    [[], ["--nodeid=n", "--endpoint=tcp://127.0.0.1:1"], ["--nodeid=n", "--enable-attach=maybe"]],
)
def test_bad_command_lines_exit(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_socket_path() -> None:
    assert socket_path("/a/b.sock") == "/a/b.sock"
    with pytest.raises(ValueError):
        socket_path("unix://")


def test_capabilities_follow_options() -> None:
    base = caps.compute(DriverOptions(node_id="n"))
    assert "PUBLISH_UNPUBLISH_VOLUME" not in base.controller
    assert "EXPAND_VOLUME" in base.controller and "EXPAND_VOLUME" in base.node
    assert base.plugin == (
        "CONTROLLER_SERVICE",
        "VOLUME_ACCESSIBILITY_CONSTRAINTS",
        "GROUP_CONTROLLER_SERVICE",
    )
    attach = caps.compute(DriverOptions(enable_attach=True))
    assert {"PUBLISH_UNPUBLISH_VOLUME", "LIST_VOLUMES_PUBLISHED_NODES"} <= set(attach.controller)
    node_only = caps.compute(DriverOptions(controller_service=False, enable_topology=False))
    assert node_only.plugin == () and node_only.controller == () and node_only.group == ()
    assert "STAGE_UNSTAGE_VOLUME" in node_only.node


def test_capabilities_add_and_remove_by_name() -> None:
    opts = DriverOptions(
        enable_attach=True,
        add_capabilities=["controller:PUBLISH_READONLY", "expansion:ONLINE"],
        remove_capabilities=["EXPAND_VOLUME", "node:STAGE_UNSTAGE_VOLUME"],
    )
    got = caps.compute(opts)
    assert "PUBLISH_READONLY" in got.controller
    assert got.expansion == ("ONLINE",)
    assert "EXPAND_VOLUME" not in got.controller and "EXPAND_VOLUME" not in got.node
    assert "STAGE_UNSTAGE_VOLUME" not in got.node
    assert got.values("controller") == sorted(got.values("controller"))
    with pytest.raises(ValueError):
        caps.compute(DriverOptions(add_capabilities=["node:CREATE_DELETE_VOLUME"]))
