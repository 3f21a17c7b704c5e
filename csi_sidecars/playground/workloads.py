"""Drivers, sidecars and kubectl on the testbed: what runs on top of the control plane.

:class:`Workloads` is the half of :class:`~csi_sidecars.playground.controlplane.ControlPlane`
that starts the CSI driver (and registers it the way kubelet and a driver installer would), the
sidecars as separate processes, and kubectl with any identity. The other half, in
``controlplane``, runs etcd and the Kubernetes components.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.playground import objects, sidecars
from csi_sidecars.playground.apiclient import ApiError, RawApi
from csi_sidecars.playground.process import ManagedProcess, poll_until

ADMIN = "admin"
#: The mutable parameters the playground driver accepts in ControllerModifyVolume.
MUTABLE_PARAMETERS = "iops,throughput"


class StartupError(RuntimeError):
    """A component did not come up; the message carries the end of its log."""


class KubectlError(RuntimeError):
    """kubectl exited non-zero."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"kubectl {' '.join(args)} exited {returncode}: {stderr.strip()}")


@dataclass(frozen=True)
class Identity:
    """One API identity of the testbed: a user name, its groups, a token and a kubeconfig."""

    name: str
    user: str
    groups: tuple[str, ...]
    token: str
    kubeconfig: Path


@dataclass(frozen=True)
class Driver:
    """A CSI driver registered on one node.

    Attributes:
        node: the node it serves.
        name: the CSI driver name.
        socket: path of its unix socket.
        state_dir: the driver's state directory (None for a driver the testbed did not start).
        process: the driver process, or None for a user-provided socket.
        call_log: the file our driver appends every CSI call to (``--call-log``), or None.
    """

    node: str
    name: str
    socket: Path
    state_dir: Path | None
    process: ManagedProcess | None
    call_log: Path | None = None

    @property
    def endpoint(self) -> str:
        """The socket as a ``unix://`` URL (what ``--csi-address`` takes)."""
        return f"unix://{self.socket}"


def check_alive(proc: ManagedProcess | None) -> None:
    """Raise :class:`StartupError` with its log tail if ``proc`` has exited."""
    if proc is not None and not proc.running:
        raise StartupError(f"{proc.name} exited with status {proc.returncode}:\n{proc.log_tail()}")


async def wait_ready(proc: ManagedProcess | None, check: Any, timeout: float) -> None:
    """Poll ``check`` until it holds; a dead ``proc`` or the deadline is a StartupError."""
    name = proc.name if proc is not None else "driver socket"
    try:
        await poll_until(check, timeout, f"{name} to become ready", fatal=(StartupError,))
    except TimeoutError as exc:
        cause = exc.__cause__
        tail = proc.log_tail() if proc is not None else ""
        raise StartupError(f"{exc} (last error: {cause!r})\n{tail}") from cause


class Workloads:
    """Driver, sidecar and kubectl helpers; mixed into ControlPlane, which sets the state."""

    work_dir: Path
    bin_dir: Path
    driver_name: str
    node_names: list[str]
    identities: dict[str, Identity]
    drivers: list[Driver]
    _processes: list[ManagedProcess]
    _counter: int
    _admin: RawApi | None

    @property
    def admin(self) -> RawApi:
        """A raw API client with the admin identity (owned by the control plane)."""
        assert self._admin is not None, "control plane not started"
        return self._admin

    def kubeconfig(self, identity: str = ADMIN) -> Path:
        """The kubeconfig file of ``identity`` (``admin`` or a sidecar identity name)."""
        return self.identities[identity].kubeconfig

    def log_path(self, name: str) -> Path:
        """Where the log of process ``name`` goes."""
        return self.work_dir / "logs" / f"{name}.log"

    async def register_driver(
        self,
        node: str,
        node_id: str | None = None,
        topology: bool = True,
        driver_name: str | None = None,
    ) -> None:
        """Add a driver to ``node``'s CSINode, as kubelet does when the registrar registers.

        Args:
            node: the Node (and CSINode) name.
            node_id: the driver's node ID (default the node name).
            topology: whether the driver reports the playground topology key.
            driver_name: the driver (default the control plane's driver name).
        """
        path = f"/apis/storage.k8s.io/v1/csinodes/{node}"
        entry = objects.csinode_driver(
            driver_name or self.driver_name,
            node_id or node,
            [objects.TOPOLOGY_KEY] if topology else None,
        )
        for _ in range(10):
            current = await self.admin.get(path)
            current["spec"]["drivers"] = objects.with_driver(current, entry)
            try:
                await self.admin.replace(path, current)
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise

    # -- driver and processes ------------------------------------------------------------

    def is_real(self, node: str) -> bool:
        """Whether a real kubelet runs ``node`` (never, without real nodes)."""
        return False

    def node_driver_socket(self, node: str) -> Path | None:
        """Where a driver's socket goes on a real node (None: no convention, API-only node)."""
        return None

    async def start_driver(
        self,
        node: str | None = None,
        args: Sequence[str] = (),
        *,
        command: Sequence[str] | None = None,
        socket: Path | None = None,
        attach: bool = True,
        topology: bool = True,
        csidriver: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Driver:
        """Start the CSI driver for ``node`` and register it (CSIDriver, CSINode entry).

        By default runs ``python -m csi_sidecars.playground.driver`` with hostpath-style flags.
        ``command`` replaces that command line (it must listen on ``socket``); ``socket`` alone
        means a driver the caller runs already. On a real node the default socket is in
        kubelet's ``plugins/<driver>/`` directory, our driver mounts volumes for real, and the
        CSINode is left to kubelet (start node-driver-registrar to register the driver).

        Args:
            node: node name (default the first).
            args: extra flags for the default driver command.
            command: a full command line of another driver.
            socket: its unix socket path (default ``<work>/drivers/<node>/csi.sock``).
            attach: whether the driver needs ControllerPublish (``--enable-attach``,
                ``attachRequired``).
            topology: whether it reports topology (``--enable-topology``, CSINode keys).
            csidriver: the CSIDriver object to create instead of the default one.
            timeout: how long to wait for the socket.
        """
        node = node or self.node_names[0]
        real = self.is_real(node)
        base = self.work_dir / "drivers" / node
        base.mkdir(parents=True, exist_ok=True)
        state_dir: Path | None = None
        call_log: Path | None = None
        process: ManagedProcess | None = None
        if socket is None or command is not None:
            sock = socket or self.node_driver_socket(node) or base / "csi.sock"
            sock.parent.mkdir(parents=True, exist_ok=True)
            if command is None:
                state_dir = base / "state"
                state_dir.mkdir(exist_ok=True)
                call_log = base / "calls.jsonl"
                command = [
                    sys.executable,
                    "-m",
                    "csi_sidecars.playground.driver",
                    f"--endpoint=unix://{sock}",
                    f"--nodeid={node}",
                    f"--drivername={self.driver_name}",
                    f"--statedir={state_dir}",
                    *(["--enable-attach"] if attach else []),
                    *(["--enable-topology"] if topology else []),
                    *(["--mount-volumes"] if real else []),
                    f"--call-log={call_log}",
                    # ControllerModifyVolume with the parameters a real driver would accept,
                    # so a VolumeAttributesClass with any other parameter is refused.
                    "--enable-controller-modify-volume",
                    f"--accepted-mutable-parameter-names={MUTABLE_PARAMETERS}",
                    *args,
                ]
            process = ManagedProcess(f"driver-{node}", command, self.log_path(f"driver-{node}"))
            await process.start()
        else:
            sock = socket
        driver = Driver(node, self.driver_name, sock, state_dir, process, call_log)
        self.drivers.append(driver)

        async def listening() -> bool:
            if process is not None:
                check_alive(process)
            _, writer = await asyncio.open_unix_connection(str(sock))
            writer.close()
            return True

        await wait_ready(process, listening, timeout)
        spec = csidriver or objects.csidriver(self.driver_name, attach_required=attach)
        await self.admin.ensure("/apis/storage.k8s.io/v1/csidrivers", spec)
        if not real:
            await self.register_driver(node, node, topology)
        return driver

    async def start_process(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start ``argv`` as a testbed process, stopped with the control plane."""
        self._counter += 1
        proc = ManagedProcess(name, argv, self.log_path(f"{self._counter:03d}-{name}"), env)
        self._processes.append(proc)
        await proc.start()
        return proc

    async def start_sidecar(
        self,
        role: str,
        *args: str,
        implementation: str = "python",
        driver: Driver | None = None,
        env: Mapping[str, str] | None = None,
        verbosity: int | None = 5,
    ) -> ManagedProcess:
        """Start a sidecar the way a container would: its identity, the driver socket, flags.

        Args:
            role: a key of :data:`csi_sidecars.playground.sidecars.ROLES`.
            args: further flags.
            implementation: ``python`` (ours) or ``go`` (the reference binary).
            driver: the driver whose socket it uses (default the first started).
            env: extra environment (e.g. ``NAMESPACE``, ``POD_NAME``, ``NODE_NAME``).
            verbosity: ``-v`` (None to leave it out).
        """
        spec = sidecars.ROLES[role]
        driver = driver or (self.drivers[0] if self.drivers else None)
        argv = sidecars.argv(
            role,
            args,
            implementation=implementation,
            csi_address=str(driver.socket) if driver is not None else None,
            kubeconfig=self.kubeconfig(spec.identity) if spec.identity else None,
            verbosity=verbosity,
            bin_dir=self.bin_dir,
        )
        return await self.start_process(f"{implementation}-{role}", argv, env)

    async def kubectl(
        self,
        *args: str,
        identity: str = ADMIN,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> str:
        """Run kubectl as ``identity``; return its stdout.

        Raises:
            KubectlError: it exited non-zero and ``check`` is set.
        """
        proc = await asyncio.create_subprocess_exec(
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={self.kubeconfig(identity)}",
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None), timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if check and proc.returncode:
            raise KubectlError(args, proc.returncode, err.decode(errors="replace"))
        return out.decode(errors="replace")
