"""kubelet: its configuration, command line, Node readiness, taint and address helpers."""

from __future__ import annotations

from pathlib import Path

from csi_sidecars.playground.kubelet import (
    NOT_READY_TAINT,
    KubeletPaths,
    has_internal_ip,
    is_ready,
    kubelet_args,
    kubelet_config,
    node_addresses,
    without_not_ready_taint,
)


def _config(tmp_path: Path) -> dict[str, object]:
    return kubelet_config(
        KubeletPaths(tmp_path),
        runtime_socket=tmp_path / "containerd.sock",
        client_ca=tmp_path / "ca.crt",
        cgroup_root="/csi-testbed-abc-node-1",
        port=10250,
        healthz_port=10248,
    )


def test_the_settings_the_projects_machines_need(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["failSwapOn"] is False
    assert config["makeIPTablesUtilChains"] is False
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["containerRuntimeEndpoint"] == f"unix://{tmp_path / 'containerd.sock'}"
    # Logs and exec come through the API server's client certificate, nothing anonymous.
    auth = config["authentication"]
    assert auth == {  # type: ignore[comparison-overlap]
        "anonymous": {"enabled": False},
        "webhook": {"enabled": True},
        "x509": {"clientCAFile": str(tmp_path / "ca.crt")},
    }
    assert config["authorization"] == {"mode": "Webhook"}


def test_kubelet_listens_on_loopback_and_keeps_to_the_node_directory(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config["address"] == config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    for key in ("podLogsDir", "volumePluginDir"):
        assert Path(str(config[key])).is_relative_to(tmp_path)
    assert config["cgroupRoot"] == "/csi-testbed-abc-node-1"
    paths = KubeletPaths(tmp_path)
    args = kubelet_args(Path("/bin/kubelet"), paths, "node-1", tmp_path / "kc", 2)
    assert f"--root-dir={paths.root}" in args
    assert f"--cert-dir={paths.cert_dir}" in args
    assert "--hostname-override=node-1" in args
    assert paths.plugins_registry == paths.root / "plugins_registry"


def test_ready_taint_and_addresses() -> None:
    node = {
        "spec": {"taints": [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}, {"key": "x"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert is_ready(node)
    assert not is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert without_not_ready_taint(node) == [{"key": "x"}]
    assert without_not_ready_taint({"spec": {"taints": [{"key": "x"}]}}) is None
    assert not has_internal_ip(node)
    node["status"]["addresses"] = node_addresses("node-1")  # type: ignore[index]
    assert has_internal_ip(node)
    assert node_addresses("node-1")[0] == {"type": "InternalIP", "address": "127.0.0.1"}
