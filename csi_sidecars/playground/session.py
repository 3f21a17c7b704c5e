"""A running playground: control plane, CSI driver, our sidecars, and kubelet or a stand-in.

:class:`Playground` is what ``csi-sidecars playground up`` and ``demo`` run. It starts the
:class:`~csi_sidecars.playground.controlplane.ControlPlane`, one driver per node (ours by default,
or the user's), and the csi-sidecars roles that work, wired the way a DaemonSet and a controller
Deployment would wire them. With real nodes (``kubelet=True``) each Node runs a kubelet and
containerd: the driver's socket is in kubelet's ``plugins/<driver>/``, node-driver-registrar
registers in kubelet's ``plugins_registry``, kubelet writes the CSINode and mounts volumes
through the driver, and pods run (the local busybox and csi-sidecars images are imported).
Without a kubelet the playground plays the part of kubelet's plugin watcher: it dials each
node-driver-registrar's registration socket, checks ``GetInfo`` and confirms with
``NotifyRegistrationStatus``, as kubelet does.

Two files are the scriptable interface (kept stable for scripts and CI):
``DIR/kubeconfig`` (admin) once the API server answers, and ``DIR/playground.json`` once
everything is ready.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from csi_sidecars import cli
from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from csi_sidecars.csi.messages import pluginregistration_pb2_grpc as pr_grpc
from csi_sidecars.playground import images as local_images
from csi_sidecars.playground import realnode, sidecars
from csi_sidecars.playground.controlplane import ADMIN, ControlPlane, Driver
from csi_sidecars.playground.objects import DEFAULT_DRIVER
from csi_sidecars.playground.podsuite import image_tar as sidecars_image_tar
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("playground")

#: Roles that run once per node (next to the driver's node plugin).
NODE_ROLES = ("node-driver-registrar", "livenessprobe")


def available_roles() -> list[str]:
    """The csi-sidecars roles the playground can run: implemented and known to the testbed."""
    return [name for name in sidecars.ROLES if name in cli.ROLES and name != "playground"]


def parse_roles(text: str | None) -> list[str]:
    """Parse ``--roles`` (comma-separated, ``none`` or ``all``).

    Raises:
        ValueError: a role that is unknown or not implemented yet.
    """
    if text is None or text == "all":
        return available_roles()
    if text == "none":
        return []
    wanted = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in available_roles()]
    if unknown:
        raise ValueError(
            f"unknown or not implemented role(s): {', '.join(unknown)}; "
            f"available: {', '.join(available_roles()) or 'none'}"
        )
    return wanted


@dataclass
class RunningRole:
    """One sidecar process of the playground."""

    role: str
    node: str | None
    process: ManagedProcess
    http_port: int | None = None

    def describe(self) -> dict[str, Any]:
        """The playground.json entry of this role."""
        out: dict[str, Any] = {"name": self.role, "pid": self.process.pid}
        if self.node is not None:
            out["node"] = self.node
        if self.http_port is not None:
            out["httpEndpoint"] = f"127.0.0.1:{self.http_port}"
        return out


@dataclass
class Playground:
    """Everything ``playground up`` runs.

    Args:
        directory: receives ``kubeconfig``, ``playground.json`` and the work files.
        bin_dir: the testbed binaries.
        roles: csi-sidecars roles to run.
        nodes: number of Nodes.
        driver_cmd: a user driver command line (``{endpoint}`` and ``{nodeid}`` are replaced).
        driver_socket: the socket of a driver the user runs already (single node only).
        kubelet: run every Node with a real kubelet and containerd.
    """

    directory: Path
    bin_dir: Path
    roles: list[str]
    nodes: int = 1
    driver_cmd: str | None = None
    driver_socket: Path | None = None
    verbosity: int = 2
    remove_directory: bool = False
    kubelet: bool = False
    cp: ControlPlane | None = None
    _registry_root: Path | None = None
    _short_work_dir: Path | None = None
    running: list[RunningRole] = field(default_factory=list)
    registered: dict[str, bool] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    @property
    def control_plane(self) -> ControlPlane:
        """The started control plane."""
        assert self.cp is not None, "playground not started"
        return self.cp

    async def start(self) -> None:
        """Start the control plane, drivers and roles; write kubeconfig and playground.json."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in ("kubeconfig", "playground.json"):
            (self.directory / stale).unlink(missing_ok=True)
        self.cp = ControlPlane(
            self.bin_dir,
            self._work_dir(),
            nodes=self.nodes,
            verbosity=1,
            kubelet=self.kubelet,
        )
        await self.cp.start()
        shutil.copyfile(self.cp.kubeconfig(ADMIN), self.directory / "kubeconfig")
        # The csi-sidecars image is large: import it while the rest starts.
        importing = asyncio.ensure_future(self._import_sidecars_image())
        try:
            await self._start_workloads()
            await importing
        finally:
            importing.cancel()
        self.write_description()

    async def _start_workloads(self) -> None:
        cp = self.control_plane
        for node in cp.node_names:
            await self._start_driver(node)
        for role in self.roles:
            if role in NODE_ROLES:
                for driver in cp.drivers:
                    await self._start_node_role(role, driver)
            else:
                proc = await cp.start_sidecar(role, driver=cp.drivers[0], verbosity=self.verbosity)
                self.running.append(RunningRole(role, None, proc))
        if "node-driver-registrar" in self.roles:
            await asyncio.gather(*(self._registered(d.node) for d in cp.drivers))

    def _work_dir(self) -> Path:
        """``DIR/work``; with real nodes and a deep DIR, a short temporary directory instead
        (kubelet's plugin sockets live below it), linked from ``DIR/work``."""
        work = self.directory / "work"
        names = [f"node-{i}" for i in range(1, self.nodes + 1)]
        if not self.kubelet or realnode.sockets_fit(work, names, DEFAULT_DRIVER):
            return work
        # The csi-tb- prefix: a crashed run's directory is swept by the next testbed.
        self._short_work_dir = Path(tempfile.mkdtemp(prefix="csi-tb-pg-"))
        if work.is_symlink():
            work.unlink()
        if not work.exists():
            work.symlink_to(self._short_work_dir)
        return self._short_work_dir

    async def _import_sidecars_image(self) -> None:
        tar = sidecars_image_tar()
        if self.kubelet and tar.exists():
            await self.control_plane.import_image(tar)
            self.images["csi-sidecars"] = local_images.CSI_SIDECARS_IMAGE
        if self.kubelet:
            self.images["busybox"] = local_images.busybox_image_name()

    async def _registered(self, node: str) -> None:
        """Wait for the registration: kubelet's (CSINode) on a real node, else ours."""
        cp = self.control_plane
        if cp.is_real(node):
            await cp.wait_csinode_driver(node)
            self.registered[node] = True
        else:
            await self._play_kubelet(node)

    async def _start_driver(self, node: str) -> Driver:
        cp = self.control_plane
        if self.driver_socket is not None:
            return await cp.start_driver(node, socket=self.driver_socket)
        if self.driver_cmd is not None:
            sock = cp.node_driver_socket(node) or cp.work_dir / "drivers" / node / "csi.sock"
            sock.parent.mkdir(parents=True, exist_ok=True)
            command = [
                part.replace("{endpoint}", f"unix://{sock}").replace("{nodeid}", node)
                for part in shlex.split(self.driver_cmd)
            ]
            return await cp.start_driver(node, command=command, socket=sock)
        return await cp.start_driver(node)

    def _registry_dir(self, node: str) -> Path:
        # kubelet's plugins_registry stand-in. Unix socket paths are limited to 107 bytes, so it
        # lives in a short temporary directory rather than under a possibly deep --dir.
        if self._registry_root is None:
            self._registry_root = Path(tempfile.mkdtemp(prefix="csi-pg-"))
        return self._registry_root / node

    async def _start_node_role(self, role: str, driver: Driver) -> None:
        port = free_port()
        args = [f"--http-endpoint=127.0.0.1:{port}"]
        if role == "node-driver-registrar":
            real = self.control_plane.real_nodes.get(driver.node)
            registry = real.paths.plugins_registry if real else self._registry_dir(driver.node)
            registry.mkdir(parents=True, exist_ok=True)
            args += [
                f"--kubelet-registration-path={driver.socket}",
                f"--plugin-registration-path={registry}",
            ]
        proc = await self.control_plane.start_sidecar(
            role, *args, driver=driver, verbosity=self.verbosity
        )
        self.running.append(RunningRole(role, driver.node, proc, port))

        async def serving() -> bool:
            if not proc.running:
                raise RuntimeError(
                    f"{role} on {driver.node} exited with {proc.returncode}:\n" + proc.log_tail(20)
                )
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return True

        # The playground is ready only once every role answers on its HTTP endpoint.
        await poll_until(
            serving, 30, f"{role} on {driver.node} to serve HTTP", fatal=(RuntimeError,)
        )

    async def _play_kubelet(self, node: str) -> None:
        """Confirm the registrar's registration the way kubelet's plugin watcher does."""
        cp = self.control_plane
        reg_sock = self._registry_dir(node) / f"{cp.driver_name}-reg.sock"

        registrar = next(
            r.process for r in self.running if r.role == "node-driver-registrar" and r.node == node
        )

        async def registered() -> bool:
            if not registrar.running:
                raise RuntimeError(
                    f"node-driver-registrar on {node} exited with {registrar.returncode}:\n"
                    + registrar.log_tail(20)
                )
            if not reg_sock.exists():
                return False
            async with grpc.aio.insecure_channel(f"unix://{reg_sock}") as channel:
                stub = pr_grpc.RegistrationStub(channel)
                info = await stub.GetInfo(pr.InfoRequest(), timeout=2)
                ok = bool(info.type == "CSIPlugin" and info.name == cp.driver_name)
                await stub.NotifyRegistrationStatus(
                    pr.RegistrationStatus(
                        plugin_registered=ok,
                        error="" if ok else f"unexpected plugin info {info.type}/{info.name}",
                    ),
                    timeout=2,
                )
                return ok

        await poll_until(
            registered, 30, f"node-driver-registrar on {node} to register", fatal=(RuntimeError,)
        )
        self.registered[node] = True

    def describe(self) -> dict[str, Any]:
        """The content of playground.json."""
        cp = self.control_plane
        return {
            "apiServer": cp.server,
            "kubeconfig": str(self.directory / "kubeconfig"),
            "kubeconfigs": {name: str(ident.kubeconfig) for name, ident in cp.identities.items()},
            "driver": {
                "name": cp.driver_name,
                "controllerSocket": str(cp.drivers[0].socket) if cp.drivers else None,
                "nodeSockets": {d.node: str(d.socket) for d in cp.drivers},
            },
            "nodes": cp.describe_nodes(),
            "images": dict(self.images),
            "roles": [r.describe() for r in self.running],
            "binDir": str(self.bin_dir),
            "workDir": str(cp.work_dir),
            "logDir": str(cp.work_dir / "logs"),
            "pluginRegistry": str(self._registry_root) if self._registry_root else None,
        }

    def write_description(self) -> Path:
        """Write playground.json atomically and return its path."""
        path = self.directory / "playground.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2) + "\n")
        tmp.replace(path)
        return path

    def dead_roles(self) -> list[RunningRole]:
        """Roles whose process has exited."""
        return [r for r in self.running if not r.process.running]

    async def status(self) -> dict[str, int]:
        """Object counts and health for the live status line."""
        api = self.control_plane.admin
        paths = {
            "pvc": "/api/v1/persistentvolumeclaims",
            "pv": "/api/v1/persistentvolumes",
            "va": "/apis/storage.k8s.io/v1/volumeattachments",
            "events": "/api/v1/events",
        }
        counts: dict[str, int] = {}
        for name, path in paths.items():
            try:
                items = (await api.get(path)).get("items", [])
            except Exception:
                counts[name] = -1
                continue
            if name == "events":
                counts["warnings"] = sum(1 for e in items if e.get("type") == "Warning")
            else:
                counts[name] = len(items)
        counts["roles"] = len(self.running) - len(self.dead_roles())
        counts["roles_dead"] = len(self.dead_roles())
        return counts

    async def stop(self) -> None:
        """Stop everything; the directory is removed only when the playground made it."""
        if self.cp is not None:
            await self.cp.stop()
        self.running.clear()
        if self._registry_root is not None:
            shutil.rmtree(self._registry_root, ignore_errors=True)
        if self._short_work_dir is not None:
            shutil.rmtree(self._short_work_dir, ignore_errors=True)
            link = self.directory / "work"
            if link.is_symlink():
                link.unlink()
        if self.remove_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def format_status(counts: dict[str, int]) -> str:
    """One status line, e.g. ``roles 3 up | pvc 2 pv 2 va 1 | warnings 0``."""
    dead = f", {counts['roles_dead']} exited" if counts.get("roles_dead") else ""
    return (
        f"roles {counts.get('roles', 0)} up{dead} | pvc {counts.get('pvc', 0)} "
        f"pv {counts.get('pv', 0)} va {counts.get('va', 0)} | "
        f"warnings {counts.get('warnings', 0)}"
    )


def kubectl_hint(directory: Path, bin_dir: Path) -> Sequence[str]:
    """Lines telling the user how to reach the playground."""
    kubeconfig = directory / "kubeconfig"
    return (
        f"admin kubeconfig: {kubeconfig}",
        f"  export KUBECONFIG={kubeconfig}",
        f"  {bin_dir / 'kubectl'} get nodes,csinodes,csidrivers,storageclasses",
        f"details for scripts: {directory / 'playground.json'}",
    )
