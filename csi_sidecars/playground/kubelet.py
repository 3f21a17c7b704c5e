"""One kubelet per real node, configured to keep to the node's directory.

The KubeletConfiguration carries the settings that matter on the project's machines (see
``reference/real-node.md``): cgroup v1 allowed (``failCgroupV1: false``), cgroupfs, swap
tolerated, low eviction and image-GC thresholds for a small disk, no iptables chains, webhook
authentication and authorization so that ``kubectl logs`` and ``exec`` work through the API
server's client certificate. Its root directory, pod logs, certificates, flexvolume directory
and cgroup root are the node's own; kubelet's two hard-coded host paths (the legacy
``/var/log/containers`` symlinks and the kernel sysctls it would set) are dealt with at build
time by ``build_testbed.sh``.

kubelet registers the Node itself; :meth:`Kubelet.wait_ready` then does two things the
testbed's loopback-only setting needs. The Node is created with the
``node.kubernetes.io/not-ready`` taint, which the node lifecycle controller (not run by the
testbed) would remove once the Node is Ready, so it removes it. And kubelet refuses a loopback
``--node-ip`` ("nodeIP can't be loopback address"), so it publishes no address at all; the API
server, which reaches kubelets by InternalIP for logs and exec, gets ``127.0.0.1`` written into
the Node status instead. kubelet keeps it: its address setter stops at the same validation
error on every status update, before touching the addresses, and the other fields are patched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.playground.apiclient import ApiError, RawApi
from csi_sidecars.playground.process import ManagedProcess, poll_until

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
#: Where kubelet puts its legacy container-log symlinks, relative to its working directory
#: (the node directory); build_testbed.sh builds kubelet with this path.
CONTAINER_LOGS_DIR = "container-logs"


@dataclass(frozen=True)
class KubeletPaths:
    """The files and directories of one node's kubelet, all under ``base``."""

    base: Path

    @property
    def root(self) -> Path:
        """``--root-dir`` (instead of /var/lib/kubelet)."""
        return self.base / "kubelet"

    @property
    def plugins_registry(self) -> Path:
        """Where kubelet's plugin watcher looks for registration sockets."""
        return self.root / "plugins_registry"

    @property
    def plugins(self) -> Path:
        """Where CSI drivers conventionally put their sockets (``plugins/<driver>/``)."""
        return self.root / "plugins"

    @property
    def pod_logs(self) -> Path:
        """``podLogsDir`` (instead of /var/log/pods)."""
        return self.base / "pod-logs"

    @property
    def config(self) -> Path:
        """The KubeletConfiguration file."""
        return self.base / "kubelet-config.json"

    @property
    def cert_dir(self) -> Path:
        """kubelet's self-signed serving certificate."""
        return self.base / "kubelet-pki"


def kubelet_config(
    paths: KubeletPaths,
    *,
    runtime_socket: Path,
    client_ca: Path,
    cgroup_root: str,
    port: int,
    healthz_port: int,
) -> dict[str, Any]:
    """The KubeletConfiguration of a testbed node (JSON, which kubelet reads as YAML)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "podLogsDir": str(paths.pod_logs),
        "volumePluginDir": str(paths.base / "flexvolume"),
        "makeIPTablesUtilChains": False,
        "oomScoreAdj": 0,
        "registerNode": True,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "nodeStatusReportFrequency": "1m",
    }


def kubelet_args(
    kubelet: Path, paths: KubeletPaths, node: str, kubeconfig: Path, verbosity: int
) -> list[str]:
    """kubelet's command line."""
    return [
        str(kubelet),
        f"--config={paths.config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={paths.root}",
        f"--cert-dir={paths.cert_dir}",
        f"--hostname-override={node}",
        "--node-ip=127.0.0.1",
        f"-v={verbosity}",
    ]


def is_ready(node: dict[str, Any]) -> bool:
    """Whether a Node's Ready condition is True."""
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def has_internal_ip(node: dict[str, Any]) -> bool:
    """Whether the Node publishes an InternalIP address."""
    addresses = node.get("status", {}).get("addresses") or []
    return any(a.get("type") == "InternalIP" for a in addresses)


def node_addresses(node: str) -> list[dict[str, str]]:
    """The addresses a testbed Node publishes: its kubelet on 127.0.0.1, and its name."""
    return [
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": node},
    ]


def without_not_ready_taint(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The Node's taints minus the not-ready one, or None when it has no such taint."""
    taints = node.get("spec", {}).get("taints") or []
    kept = [t for t in taints if t.get("key") != NOT_READY_TAINT]
    return kept if len(kept) != len(taints) else None


class Kubelet:
    """A node's kubelet process."""

    def __init__(
        self,
        node: str,
        paths: KubeletPaths,
        *,
        binary: Path,
        kubeconfig: Path,
        config: dict[str, Any],
        log_path: Path,
        verbosity: int = 1,
    ) -> None:
        self.node = node
        self.paths = paths
        self.config = config
        self.process = ManagedProcess(
            f"kubelet-{node}",
            kubelet_args(binary, paths, node, kubeconfig, verbosity),
            log_path,
            cwd=paths.base,
        )

    @property
    def port(self) -> int:
        """kubelet's HTTPS port (logs, exec)."""
        return int(self.config["port"])

    async def start(self) -> None:
        """Write the configuration and start kubelet."""
        for directory in (self.paths.root, self.paths.pod_logs, self.paths.cert_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.paths.config.write_text(json.dumps(self.config, indent=2) + "\n")
        await self.process.start()

    async def wait_ready(self, api: RawApi, timeout: float = 90.0) -> dict[str, Any]:
        """Wait for the Node to be Ready, then remove its not-ready taint; return the Node.

        Raises:
            RuntimeError: kubelet exited (with its log tail).
            TimeoutError: the Node did not become Ready in time.
        """
        path = f"/api/v1/nodes/{self.node}"

        async def ready() -> dict[str, Any] | None:
            if not self.process.running:
                raise RuntimeError(
                    f"kubelet on {self.node} exited with {self.process.returncode}:\n"
                    + self.process.log_tail(40)
                )
            node = await api.get_or_none(path)
            if node is None:
                return None
            if not has_internal_ip(node):
                addresses = {"status": {"addresses": node_addresses(self.node)}}
                await api.patch(f"{path}/status", addresses)
                return None
            return node if is_ready(node) else None

        node = await poll_until(
            ready, timeout, f"Node {self.node} to be Ready", fatal=(RuntimeError,)
        )
        for _ in range(10):
            taints = without_not_ready_taint(node)
            if taints is None:
                return node
            patch = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": node["metadata"]["resourceVersion"],
                },
                {
                    "op": "replace" if "taints" in node["spec"] else "add",
                    "path": "/spec/taints",
                    "value": taints,
                },
            ]
            try:
                return dict(await api.patch(path, patch, kind="json"))
            except ApiError:
                node = await api.get(path)
        raise RuntimeError(f"could not remove the {NOT_READY_TAINT} taint from {self.node}")

    async def stop(self) -> None:
        """Stop kubelet (its pods keep running until containerd stops them)."""
        await self.process.stop(timeout=10)
