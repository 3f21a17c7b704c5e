"""realnode: requirements, host-level names, API server flags, records, socket lengths."""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_sidecars.playground import realnode
from csi_sidecars.playground.realnode import NodeRecord


def test_missing_pieces_are_explained_with_how_to_get_them(tmp_path: Path) -> None:
    missing = [r for r in realnode.requirements(tmp_path) if r.what in ("kubelet", "pause")]
    assert all(not r.present for r in missing)
    text = realnode.explain_missing(missing)
    assert text == (
        "real nodes need: kubelet (testbed/build.sh kubelet); pause (testbed/build.sh pause)"
    )


def test_each_node_gets_its_own_bridge_network_cgroup_and_subnet(tmp_path: Path) -> None:
    records = realnode.plan_nodes(tmp_path, ["node-1", "node-2"])
    assert len({r.bridge for r in records}) == 2
    assert len({r.subnet for r in records}) == 2
    assert all(len(r.bridge) <= 15 for r in records)  # IFNAMSIZ
    tag = realnode.testbed_tag(tmp_path)
    assert records[0].cgroup_root == f"csi-testbed-{tag}-node-1"
    assert realnode.testbed_tag(tmp_path / "other") != tag


def test_a_record_round_trips_and_a_bad_one_is_none(tmp_path: Path) -> None:
    record = NodeRecord("node-1", "csitbabc1", "net", "cg", "10.200.0.0/24")
    path = tmp_path / "node.json"
    path.write_text(
        '{"node": "node-1", "bridge": "csitbabc1", "network": "net", "cgroup_root": "cg", '
        '"subnet": "10.200.0.0/24"}'
    )
    assert NodeRecord.load(path) == record
    path.write_text("{")
    assert NodeRecord.load(path) is None
    assert NodeRecord.load(tmp_path / "absent") is None


def test_sweeping_a_directory_without_nodes_does_nothing(tmp_path: Path) -> None:
    assert realnode.sweep(tmp_path) == 0


def test_the_api_server_flags_for_kubelets() -> None:
    args = [
        "--authorization-mode=RBAC",
        "--disable-admission-plugins=ServiceAccount",
        "--secure-port=1",
    ]
    out = realnode.adjust_apiserver_args(args, Path("/c.crt"), Path("/c.key"))
    assert "--authorization-mode=Node,RBAC" in out
    assert "--disable-admission-plugins=ServiceAccount" not in out
    assert "--allow-privileged=true" in out
    assert "--kubelet-preferred-address-types=InternalIP" in out
    assert "--kubelet-client-certificate=/c.crt" in out
    assert "--secure-port=1" in out
    again = realnode.adjust_apiserver_args(out, Path("/c.crt"), Path("/c.key"))
    assert again.count("--allow-privileged=true") == 1


@pytest.mark.parametrize(("length", "fits"), [(20, True), (40, True), (60, False)])
def test_sockets_must_fit_a_unix_socket_address(length: int, fits: bool) -> None:
    work = Path("/" + "d" * (length - 1))
    assert realnode.sockets_fit(work, ["node-1"], "hostpath.csi.k8s.io") is fits
