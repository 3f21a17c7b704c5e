"""containerd: the generated config, the CNI network, subnet choice, paths."""

from __future__ import annotations

import hashlib
import ipaddress
import random
import tomllib
from pathlib import Path

import pytest

from csi_sidecars.playground.containerd import (
    ContainerdPaths,
    cni_conflist,
    containerd_config,
    pick_subnet,
    used_networks,
)

CRI = 'plugins."io.containerd.grpc.v1.cri"'


def test_every_path_containerd_writes_is_under_the_node_directory(tmp_path: Path) -> None:
    paths = ContainerdPaths(tmp_path / "n1" / "containerd")
    config = tomllib.loads(containerd_config(paths, "localhost/pause:1"))
    assert config["version"] == 2
    assert config["root"] == str(paths.root)
    assert config["state"] == str(paths.state)
    assert config["grpc"]["address"] == str(paths.socket)
    assert config["ttrpc"]["address"].startswith(str(paths.base))
    plugins = config["plugins"]
    assert plugins["io.containerd.internal.v1.opt"]["path"].startswith(str(paths.base))
    cri = plugins["io.containerd.grpc.v1.cri"]
    assert cri["cni"]["conf_dir"] == str(paths.cni_conf_dir)
    assert cri["containerd"]["runtimes"]["runc"]["options"]["Root"].startswith(str(paths.base))
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["registry"]["config_path"].startswith(str(paths.base))


def test_the_cri_settings_that_matter_on_the_projects_machines(tmp_path: Path) -> None:
    config = tomllib.loads(containerd_config(ContainerdPaths(tmp_path), "localhost/pause:1"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # root lacks CAP_SYS_RESOURCE
    assert cri["sandbox_image"] == "localhost/pause:1"
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert cri["stream_server_address"] == "127.0.0.1"
    assert "io.containerd.snapshotter.v1.aufs" in config["disabled_plugins"]


def test_the_cni_network_needs_no_host_wide_setting(tmp_path: Path) -> None:
    conf = cni_conflist("tb-net", "csitbabc1", "10.200.3.0/24", tmp_path / "ipam")
    bridge = conf["plugins"][0]
    assert conf["name"] == "tb-net"
    assert bridge["bridge"] == "csitbabc1"
    # A gateway would switch on IP forwarding, masquerading adds iptables rules.
    assert bridge["isGateway"] is False
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.200.3.0/24"}]]
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "loopback"]


ROUTES = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
cni0	0000C00A	00000000	0001	0	0	0	0000FFFF	0	0	0
bad line
"""


def test_routes_are_read_from_proc_net_route() -> None:
    assert used_networks(ROUTES) == [
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("10.192.0.0/16"),
    ]


def test_a_subnet_avoids_every_route() -> None:
    taken = used_networks(ROUTES)
    for seed in range(50):
        subnet = pick_subnet(taken, random.Random(seed))
        assert subnet.prefixlen == 24
        assert subnet.subnet_of(ipaddress.IPv4Network("10.192.0.0/11"))
        assert not any(subnet.overlaps(t) for t in taken)


def test_a_host_without_a_free_subnet_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no free /24"):
        pick_subnet([ipaddress.IPv4Network("10.0.0.0/8")], random.Random(1))


def test_a_nodes_shim_sockets_and_cni_cache_are_found_below_the_node_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csi_sidecars.playground import containerd, mountns

    # On this host /run/containerd/s does not exist but /run does, /var/lib/cni exists.
    host = tmp_path / "host"
    (host / "run").mkdir(parents=True)
    (host / "var" / "lib" / "cni").mkdir(parents=True)
    shim_dir, cni_dir = host / "run" / "containerd" / "s", host / "var" / "lib" / "cni"
    monkeypatch.setattr(mountns, "SHIM_SOCKET_DIR", shim_dir)
    monkeypatch.setattr(mountns, "HARD_CODED", (shim_dir, cni_dir))
    monkeypatch.setattr(containerd, "CNI_CACHE", cni_dir / "results")
    paths = ContainerdPaths(tmp_path / "node" / "containerd")
    (paths.root / "io.containerd.grpc.v1.cri" / "sandboxes" / "sb1").mkdir(parents=True)
    (paths.state / "io.containerd.runtime.v2.task" / "k8s.io" / "c1").mkdir(parents=True)
    assert containerd.runtime_ids(paths) == {"sb1", "c1"}
    # containerd 1.6: sha256 of "<address>/<namespace>/<id>" in /run/containerd/s, which its
    # namespace sees from the node directory (mounted over /run, the nearest that exists).
    expected = hashlib.sha256(f"{paths.socket}/k8s.io/sb1".encode()).hexdigest()
    view = paths.host_view / host.relative_to("/")
    assert containerd.shim_socket(paths, "sb1") == view / "run" / "containerd" / "s" / expected
    assert containerd.cni_cache(paths) == view / "var" / "lib" / "cni" / "results"
