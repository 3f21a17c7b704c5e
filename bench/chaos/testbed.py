"""The chaos testbed: control plane, driver, replicas behind proxies, and a supervisor.

Two Nodes, one playground driver serving both (``--known-node=*``) with a faults file and a
request log. Every controller role runs as ``replicas`` processes with leader election, each
under its own hostname (a UTS namespace: the Go sidecars take the hostname as their leader
identity, so two replicas on one host would both think they lead) and its own kubeconfig
pointing at its own :class:`~csi_sidecars.playground.netproxy.TcpProxy`, so any one of them can
be cut off from the API server. The supervisor plays kubelet: a replica that exits (killed,
lost its lease, lost the driver) is started again a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from csi_sidecars.playground import sidecars
from csi_sidecars.playground.controlplane import ADMIN, ControlPlane, Driver
from csi_sidecars.playground.driver import write_faults_file
from csi_sidecars.playground.netproxy import TcpProxy, proxied_kubeconfig
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until

from .api import Api
from .roles import BY_NAME, COMMON_FLAGS, OURS, Casting

RESTART_DELAY = 1.0
NODES = 2
#: Latency of the driver at all times (not a fault): a delete often lands while a create runs.
BASELINE: tuple[Mapping[str, Any], ...] = (
    {"method": "CreateVolume", "delay": 0.3},
    {"method": "CreateSnapshot", "delay": 0.3},
    {"method": "DeleteVolume", "delay": 0.1},
)


def uts_wrapper() -> list[str] | None:
    """The command prefix that gives a child its own hostname, or None when not possible."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--uts"], ["unshare", "--user", "--map-root-user", "--uts"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", "hostname chaos-probe"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [*prefix, "sh", "-c", 'hostname "$0" && exec "$@"']
    return None


@dataclass
class Replica:
    """One process of one role."""

    role: str
    impl: str
    hostname: str
    http_port: int
    proxy: TcpProxy
    process: ManagedProcess
    restarts: int = 0
    exits: list[int] = field(default_factory=list)
    down_since: float | None = None
    hold_until: float = 0.0

    @property
    def name(self) -> str:
        """The replica's hostname, which is also its leader identity."""
        return self.hostname


class Testbed:
    """Everything a chaos run runs on.

    Args:
        casting: who plays each role.
        work_dir: where the control plane, driver state and logs go.
        replicas: processes per role.
        verbosity: ``-v`` of the sidecars.
        bin_dir: the testbed binaries (default: the build cache).
    """

    def __init__(
        self,
        casting: Casting,
        work_dir: Path,
        *,
        replicas: int = 2,
        verbosity: int = 5,
        bin_dir: Path | None = None,
    ) -> None:
        self.casting = casting
        self.work_dir = work_dir
        self.replica_count = replicas
        self.verbosity = verbosity
        self.cp = ControlPlane(bin_dir, work_dir / "cp", nodes=NODES, verbosity=1)
        self.replicas: list[Replica] = []
        self.driver: Driver | None = None
        self.api: Api | None = None
        self.faults_file = work_dir / "faults.json"
        self.request_log = work_dir / "requests.jsonl"
        self.baseline: list[Mapping[str, Any]] = list(BASELINE)
        self._wrapper: list[str] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def driver_name(self) -> str:
        """The CSI driver name."""
        return self.cp.driver_name

    @property
    def statedir(self) -> Path:
        """The driver's state directory."""
        assert self.driver is not None and self.driver.state_dir is not None
        return self.driver.state_dir

    async def start(self, features: list[str]) -> None:
        """Start the control plane, the driver and every replica; returns when all run.

        Raises:
            RuntimeError: replicas need their own hostnames and ``unshare`` cannot give them.
        """
        self._wrapper = uts_wrapper()
        if self._wrapper is None and self.replica_count > 1:
            raise RuntimeError(
                "two replicas per role need their own hostname (leader identity): "
                "'unshare --uts' is not available here; run with --replicas 1"
            )
        await self.cp.start()
        self.api = Api(self.cp.api(ADMIN))
        write_faults_file(self.faults_file, self.baseline)
        self.driver = await self.cp.start_driver(
            self.cp.node_names[0],
            [
                "--known-node=*",
                f"--faults-file={self.faults_file}",
                f"--request-log={self.request_log}",
                "--enable-controller-modify-volume",
                "--accepted-mutable-parameter-names=iops",
                "--disable-node-expansion",
                "--v=3",
            ],
            attach="attach" in features,
        )
        for node in self.cp.node_names[1:]:
            await self.cp.register_driver(node)
        for role in self.casting.roles:
            for index in range(self.replica_count):
                await self._add_replica(role, index)
        self._supervisor = asyncio.create_task(self._supervise())

    async def _add_replica(self, role: str, index: int) -> None:
        assert self.driver is not None
        impl = self.casting.impl[role]
        hostname = f"chaos-{role}-{index}"
        proxy = TcpProxy(upstream_port=self.cp.api_port)
        await proxy.start()
        identity = sidecars.ROLES[role].identity
        assert identity is not None
        kubeconfig = proxied_kubeconfig(
            self.cp.kubeconfig(identity), self.work_dir / "kubeconfig" / f"{hostname}", proxy.url
        )
        port = free_port()
        argv = sidecars.argv(
            role,
            [*COMMON_FLAGS, *BY_NAME[role].flags, f"--http-endpoint=127.0.0.1:{port}"],
            implementation="python" if impl == OURS else "go",
            csi_address=str(self.driver.socket),
            kubeconfig=kubeconfig,
            verbosity=self.verbosity,
            bin_dir=self.cp.bin_dir,
        )
        if self._wrapper is not None:
            argv = [*self._wrapper, hostname, *argv]
        process = await self.cp.start_process(f"{impl}-{hostname}", argv)
        self.replicas.append(Replica(role, impl, hostname, port, proxy, process))

    def hold(self, rep: Replica, seconds: float) -> None:
        """Keep ``rep`` down for ``seconds`` once it exits (a crash loop back-off)."""
        rep.hold_until = time.monotonic() + seconds

    def release_holds(self) -> None:
        """Let every held replica start again."""
        for rep in self.replicas:
            rep.hold_until = 0.0

    async def _supervise(self) -> None:
        """Restart replicas that exited, :data:`RESTART_DELAY` seconds after they did (or
        once their hold ends)."""
        while not self._stopping:
            now = time.monotonic()
            for rep in self.replicas:
                if rep.process.running:
                    continue
                if rep.down_since is None:
                    rep.down_since = now
                    rep.exits.append(rep.process.returncode or 0)
                elif now - rep.down_since >= RESTART_DELAY and now >= rep.hold_until:
                    rep.down_since = None
                    rep.restarts += 1
                    with contextlib.suppress(RuntimeError):
                        await rep.process.start()
            await asyncio.sleep(0.2)

    # -- fault hooks ------------------------------------------------------------------------

    async def leaders(self) -> dict[str, str]:
        """Role -> hostname of the replica that holds its Lease now (when one does)."""
        assert self.api is not None
        leases = await self.api.items("/apis/coordination.k8s.io/v1/namespaces/default/leases")
        holders = {str((lease.get("spec") or {}).get("holderIdentity") or "") for lease in leases}
        return {r.role: r.hostname for r in self.replicas if r.hostname in holders}

    async def restart_driver(self, hard: bool) -> None:
        """Stop the driver (SIGKILL when ``hard``, else SIGTERM) and start it again."""
        assert self.driver is not None and self.driver.process is not None
        proc = self.driver.process
        if hard:
            proc.signal(9)
            await proc.wait(timeout=10)
        else:
            await proc.stop(timeout=5)
        await asyncio.sleep(0.5)
        await proc.start()
        sock = self.driver.socket

        async def listening() -> bool:
            _, writer = await asyncio.open_unix_connection(str(sock))
            writer.close()
            return True

        await poll_until(listening, 30, "the driver to listen again")

    def write_faults(self, rules: list[Mapping[str, Any]]) -> None:
        """Replace the driver's fault rules (the baseline latency stays)."""
        write_faults_file(self.faults_file, [*self.baseline, *rules])

    # -- health -----------------------------------------------------------------------------

    async def healthy(self, rep: Replica) -> tuple[bool, str]:
        """Whether the replica runs and its health endpoints answer 200."""
        if not rep.process.running:
            return False, f"exited {rep.process.returncode}"
        paths = ["/healthz/leader-election"] + (["/healthz"] if rep.impl == OURS else [])
        try:
            async with aiohttp.ClientSession() as http:
                for path in paths:
                    url = f"http://127.0.0.1:{rep.http_port}{path}"
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                        if resp.status != 200:
                            return False, f"{path}: HTTP {resp.status} {(await resp.text())[:80]}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return False, f"{paths[0]}: {exc!r}"
        return True, ""

    async def wait_healthy(self, timeout: float) -> bool:
        """Wait until every replica is healthy (False at the deadline)."""

        async def all_up() -> bool:
            results = await asyncio.gather(*(self.healthy(r) for r in self.replicas))
            return all(ok for ok, _ in results)

        try:
            await poll_until(all_up, timeout, "every replica to be healthy", interval=1.0)
        except TimeoutError:
            return False
        return True

    def log_files(self) -> list[Path]:
        """Every log the run wrote: components, driver, replicas, the request log."""
        logs = sorted((self.cp.work_dir / "logs").glob("*.log"))
        return [*logs, self.request_log]

    async def stop(self) -> None:
        """Stop the supervisor, the proxies and everything the control plane runs."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self.api is not None:
            await self.api.raw.close()
        await self.cp.stop()
        for rep in self.replicas:
            await rep.proxy.stop()
