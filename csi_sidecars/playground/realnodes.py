"""The real-node half of the control plane: kubelets and containerds instead of API-only Nodes.

:class:`RealNodes` (on top of :class:`~.workloads.Workloads`) is a base of
:class:`~csi_sidecars.playground.controlplane.ControlPlane`.
With ``ControlPlane(kubelet=True)`` every Node is run by a :class:`~.realnode.RealNode`; the
control plane then asks this mixin for the extra identities, API server flags and controllers
such a cluster needs, starts and stops the nodes, and offers what tests and the playground use
on them: image import, the node's plugin paths, and a CSI node plugin (driver plus
node-driver-registrar) placed as a DaemonSet would place it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csi_sidecars.playground import hostops, images, pki, realnode
from csi_sidecars.playground.process import ManagedProcess, poll_until
from csi_sidecars.playground.realnode import RealNode
from csi_sidecars.playground.workloads import Driver, Workloads


class RealNodes(Workloads):
    """Real-node support on top of the workload helpers; ControlPlane sets the attributes."""

    kubelet: bool
    real_nodes: dict[str, RealNode]
    verbosity: int
    _pki: pki.Pki | None

    def check_real_node_requirements(self) -> None:
        """Raise when real nodes were asked for and a piece is missing.

        Raises:
            FileNotFoundError: with what to install.
        """
        if not self.kubelet:
            return
        missing = realnode.missing_requirements(self.bin_dir)
        if missing:
            raise FileNotFoundError(realnode.explain_missing(missing))

    def node_identity_specs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The kubelets' API identities (none without real nodes)."""
        if not self.kubelet:
            return []
        return [realnode.node_identity(name) for name in self.node_names]

    def real_node_apiserver_args(self, args: list[str]) -> list[str]:
        """``args`` adjusted for real kubelets (unchanged without them)."""
        if not self.kubelet:
            return args
        assert self._pki is not None
        return realnode.adjust_apiserver_args(
            args, self._pki.kubelet_client_cert, self._pki.kubelet_client_key
        )

    def real_node_controllers(self) -> tuple[str, ...]:
        """The extra kube-controller-manager controllers real nodes need."""
        return realnode.REAL_NODE_CONTROLLERS if self.kubelet else ()

    def is_real(self, node: str) -> bool:
        """Whether a real kubelet runs ``node``."""
        return node in self.real_nodes

    def node_driver_socket(self, node: str) -> Path | None:
        """``<kubelet root>/plugins/<driver>/csi.sock`` on a real node, else None."""
        real = self.real_nodes.get(node)
        return real.driver_socket(self.driver_name) if real is not None else None

    async def start_real_nodes(self) -> None:
        """Create and start a RealNode per Node name; return when every Node is Ready."""
        assert self._pki is not None
        built = images.ensure_small_images(self.bin_dir)
        records = realnode.plan_nodes(self.work_dir, self.node_names)
        for record in records:
            node = RealNode(
                record.node,
                self.work_dir / realnode.NODES_DIR / record.node,
                record,
                bin_dir=self.bin_dir,
                kubeconfig=self.kubeconfig(realnode.node_identity(record.node)[0]),
                client_ca=self._pki.ca_cert,
                built=built,
                log_dir=self.log_path("x").parent,
                verbosity=self.verbosity,
            )
            node.check_socket_paths(self.driver_name)
            self.real_nodes[record.node] = node
        await realnode.start_all(list(self.real_nodes.values()), self.admin)

    async def stop_real_nodes(self) -> None:
        """Stop every real node (pods, kubelet, containerd, mounts, cgroups, bridges)."""
        await realnode.stop_all(list(self.real_nodes.values()))
        if self.real_nodes:
            # Block volumes' loop devices: their files are in the drivers' state directories.
            hostops.release_loop_devices(self.work_dir)
        self.real_nodes.clear()

    async def import_image(self, tar: Path) -> None:
        """Import an image tar into every real node's containerd."""
        for node in self.real_nodes.values():
            await node.import_image(tar)

    async def wait_default_service_account(self, namespace: str, timeout: float = 60) -> None:
        """Wait for the ``default`` ServiceAccount of ``namespace`` (pods need it to be admitted
        once the ServiceAccount admission plugin is on); returns at once without real nodes."""
        if not self.kubelet:
            return
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"

        async def present() -> bool:
            return await self.admin.get_or_none(path) is not None

        await poll_until(present, timeout, f"the default ServiceAccount in {namespace}")

    async def start_registrar(
        self, driver: Driver, *args: str, verbosity: int | None = 5
    ) -> ManagedProcess:
        """Start node-driver-registrar for ``driver`` on its real node, registering with kubelet.

        Raises:
            ValueError: the driver's node is not a real node.
        """
        node = self.real_nodes.get(driver.node)
        if node is None:
            raise ValueError(f"{driver.node} is not run by a real kubelet")
        return await self.start_sidecar(
            "node-driver-registrar",
            f"--kubelet-registration-path={driver.socket}",
            f"--plugin-registration-path={node.paths.plugins_registry}",
            *args,
            driver=driver,
            verbosity=verbosity,
        )

    async def wait_csinode_driver(self, node: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until kubelet lists this control plane's driver in ``node``'s CSINode."""
        path = f"/apis/storage.k8s.io/v1/csinodes/{node}"

        def listed(obj: dict[str, Any]) -> bool:
            return any(d.get("name") == self.driver_name for d in obj["spec"].get("drivers") or [])

        return await self.admin.wait_for(
            path, listed, timeout, f"{self.driver_name} in CSINode {node}"
        )

    def describe_nodes(self) -> list[dict[str, Any]]:
        """The ``nodes`` entries of playground.json."""
        return [
            realnode.describe(self.real_nodes[n])
            if n in self.real_nodes
            else {"name": n, "kubelet": False}
            for n in self.node_names
        ]
