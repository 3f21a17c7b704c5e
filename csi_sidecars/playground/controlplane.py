"""A real Kubernetes control plane on loopback, for tests, benchmarks and the playground.

etcd, kube-apiserver (token authentication, RBAC), kube-controller-manager (the storage
controllers) and kube-scheduler run as child processes on free 127.0.0.1 ports with a fresh
temporary directory. The snapshot CRDs (:mod:`csi_sidecars.crds`) are installed and Established
before :meth:`ControlPlane.start` returns, whatever roles will run. There is no kubelet: the
control plane registers Ready Nodes and their CSINodes itself, and starts the CSI driver and
sidecars as plain processes::

    async with ControlPlane(nodes=1) as cp:
        driver = await cp.start_driver()
        await cp.start_sidecar("provisioner", implementation="go")
        print(await cp.kubectl("get", "nodes"))

Nodes stay Ready because the node lifecycle controller is not run: nothing ever marks them
NotReady, taints them or evicts pods, however long a test pauses. The price is that node failure
cannot be simulated by missing heartbeats; a test that wants it patches the Node status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from csi_sidecars import crds
from csi_sidecars.playground import binaries, objects, pki, rbac, realnode
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.components import Components
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from csi_sidecars.playground.workloads import (
    ADMIN,
    Driver,
    Identity,
    KubectlError,
    StartupError,
)
from csi_sidecars.runtime.logging import get_logger

__all__ = [
    "ADMIN",
    "ControlPlane",
    "Driver",
    "Identity",
    "KubectlError",
    "StartupError",
    "remove_stale_work_dirs",
]

log = get_logger("testbed")

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
#: kube-controller-manager controllers the storage sidecars depend on (plus cleanup ones).
CONTROLLERS = (
    "persistentvolume-binder-controller",
    "persistentvolume-attach-detach-controller",
    "persistentvolume-expander-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "ephemeral-volume-controller",
    "volumeattributesclass-protection-controller",
)
_OWNER_FILE = "owner.pid"
_DIR_PREFIX = "csi-tb-"


def _base_temp_dir() -> Path:
    """A temporary directory short enough for unix socket paths (108 bytes on Linux)."""
    base = Path(tempfile.gettempdir())
    return base if len(str(base)) <= 40 else Path("/tmp")


def remove_stale_work_dirs(base: Path | None = None) -> list[Path]:
    """Delete work directories left by testbeds whose owning process is gone; return them."""
    removed: list[Path] = []
    base = base or _base_temp_dir()
    for candidate in base.glob(f"{_DIR_PREFIX}*"):
        try:
            pid = int((candidate / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            realnode.sweep(candidate)
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        except PermissionError:
            continue
    return removed


def _owned_by_live_process(work_dir: Path) -> bool:
    try:
        pid = int((work_dir / _OWNER_FILE).read_text())
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return pid != os.getpid()


class ControlPlane(Components):
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler, Nodes, drivers, sidecars.

    Args:
        bin_dir: directory with the binaries (default :func:`binaries.default_bin_dir`).
        work_dir: directory for data, keys, sockets and logs; default a fresh temporary one,
            removed at stop. A given directory is kept.
        nodes: how many Nodes to register (``node-1`` ... ``node-N``).
        driver_name: the CSI driver name used for CSIDriver, CSINode and the driver's flags.
        keep_work_dir: keep a temporary work directory at stop (for reading logs).
        verbosity: ``-v`` of the Kubernetes components.
        kubelet: run every Node with a real kubelet and containerd (:mod:`.realnode`) instead
            of registering API-only Nodes.
        kcm_qps: ``--kube-api-qps`` of kube-controller-manager (None: its default, 20).
            Benchmarks raise it so that the PV binder, not the sidecar under test, is never
            what limits the throughput.
        kcm_burst: ``--kube-api-burst`` of kube-controller-manager (None: its default, 30).
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        work_dir: Path | None = None,
        *,
        nodes: int = 1,
        driver_name: str = objects.DEFAULT_DRIVER,
        keep_work_dir: bool = False,
        verbosity: int = 1,
        kubelet: bool = False,
        kcm_qps: float | None = None,
        kcm_burst: int | None = None,
    ) -> None:
        self.kcm_qps = kcm_qps
        self.kcm_burst = kcm_burst
        self.bin_dir = bin_dir or binaries.default_bin_dir()
        self._given_work_dir = work_dir
        self.work_dir = Path()
        self.node_names = [f"node-{i}" for i in range(1, nodes + 1)]
        self.driver_name = driver_name
        self.keep_work_dir = keep_work_dir
        self.verbosity = verbosity
        self.kubelet = kubelet
        self.real_nodes: dict[str, realnode.RealNode] = {}
        self.identities: dict[str, Identity] = {}
        self.drivers: list[Driver] = []
        self.api_port = 0
        self.etcd_port = 0
        self.startup_seconds = 0.0
        self.api_ready_seconds = 0.0
        self.crds_seconds = 0.0
        self._pki: pki.Pki | None = None
        self._etcd: ManagedProcess | None = None
        self._apiserver: ManagedProcess | None = None
        self._components: list[ManagedProcess] = []
        self._processes: list[ManagedProcess] = []
        self._admin: RawApi | None = None
        self._counter = 0

    # -- properties ------------------------------------------------------------------------

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> ControlPlane:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start everything and register the Nodes; returns once the API is usable.

        Raises:
            FileNotFoundError: a binary is missing.
            StartupError: a component did not become healthy in time.
        """
        began = time.monotonic()
        absent = binaries.missing(binaries.CONTROL_PLANE_BINARIES, self.bin_dir)
        if absent:
            raise FileNotFoundError(
                f"missing in {self.bin_dir}: {', '.join(absent)} (run testbed/build.sh)"
            )
        self.check_real_node_requirements()
        remove_stale_work_dirs()
        if self._given_work_dir is not None:
            self.work_dir = self._given_work_dir
            self.work_dir.mkdir(parents=True, exist_ok=True)
            if not _owned_by_live_process(self.work_dir):
                # A run that crashed in this directory may have left mounts and containers.
                realnode.sweep(self.work_dir)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=_base_temp_dir()))
        (self.work_dir / _OWNER_FILE).write_text(str(os.getpid()))
        try:
            self._pki = pki.generate(self.work_dir / "pki")
            self.api_port = free_port()
            self._write_identities()
            await self._start_etcd()
            await self._start_apiserver_process()
            self.api_ready_seconds = time.monotonic() - began
            self._admin = self.api(ADMIN)
            await asyncio.gather(
                self._apply_rbac(),
                self._install_crds(),
                self._register_nodes(),
                self._start_component("kube-controller-manager", self._kcm_args),
                self._start_component("kube-scheduler", self._scheduler_args),
            )
            await self.grant_namespace("default")
            await self.wait_default_service_account("default")
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info(
            "Testbed ready",
            api_ready_seconds=round(self.api_ready_seconds, 2),
            startup_seconds=round(self.startup_seconds, 2),
            crds_seconds=round(self.crds_seconds, 2),
            server=self.server,
            work_dir=str(self.work_dir),
        )

    async def stop(self) -> None:
        """Stop every process (real nodes, sidecars and drivers first, etcd last) and remove the
        work dir."""
        await self.stop_real_nodes()
        for proc in reversed(self._processes):
            await proc.stop(timeout=5)
        for driver in reversed(self.drivers):
            if driver.process is not None:
                await driver.process.stop(timeout=5)
        for proc in reversed(self._components):
            await proc.stop(timeout=5)
        if self._apiserver is not None:
            await self._apiserver.stop(timeout=10)
        if self._etcd is not None:
            await self._etcd.stop(timeout=10)
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        for driver in self.drivers:
            with contextlib.suppress(FileNotFoundError):
                driver.socket.unlink()
        self._processes.clear()
        self._components.clear()
        self.drivers.clear()
        if self.work_dir == Path():
            return
        if self._given_work_dir is None and not self.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        else:
            # A kept directory is no longer "stale": later testbeds must not remove it.
            (self.work_dir / _OWNER_FILE).unlink(missing_ok=True)

    # -- identities ------------------------------------------------------------------------

    def _write_identities(self) -> None:
        specs: list[tuple[str, str, tuple[str, ...]]] = [
            (ADMIN, "testbed-admin", ("system:masters",)),
            ("kube-controller-manager", "system:kube-controller-manager", ("system:masters",)),
            ("kube-scheduler", "system:kube-scheduler", ()),
        ]
        specs += [(name, name, ()) for name in rbac.IDENTITIES]
        specs += self.node_identity_specs()
        config_dir = self.work_dir / "kubeconfig"
        config_dir.mkdir(exist_ok=True)
        lines = []
        for name, user, groups in specs:
            token = secrets.token_hex(24)
            path = config_dir / f"{name}.kubeconfig"
            path.write_text(json.dumps(self._kubeconfig_data(user, token), indent=2))
            path.chmod(0o600)
            self.identities[name] = Identity(name, user, groups, token, path)
            lines.append(f'{token},{user},{user},"{",".join(groups)}"')
        tokens = self.work_dir / "pki" / "tokens.csv"
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)

    def _kubeconfig_data(self, user: str, token: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testbed",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "testbed",
                    "context": {"cluster": "testbed", "user": user, "namespace": "default"},
                }
            ],
            "current-context": "testbed",
        }

    # -- etcd and the API server -----------------------------------------------------------

    async def _apply_rbac(self) -> None:
        for identity in rbac.IDENTITIES:
            for obj in rbac.cluster_objects(identity):
                await self.admin.ensure(rbac.api_path(obj), obj)

    async def _install_crds(self) -> None:
        """Apply the snapshot CRDs (server-side, so a kept work dir gets ours) until Established."""
        began = time.monotonic()
        params = {"fieldManager": "csi-sidecars-testbed", "force": "true"}
        await asyncio.gather(
            *(
                self.admin.request(
                    "PATCH",
                    f"{crds.CRD_PATH}/{crd['metadata']['name']}",
                    crd,
                    params,
                    content_type="application/apply-patch+yaml",
                )
                for crd in crds.snapshot_crds()
            )
        )

        async def established() -> bool:
            listed = await self.admin.get(crds.CRD_PATH)
            ready = {c["metadata"]["name"] for c in listed["items"] if crds.is_established(c)}
            return ready.issuperset(crds.SNAPSHOT_CRD_NAMES)

        await poll_until(
            established, 60, "the snapshot CRDs to be Established", interval=0.05, max_interval=0.2
        )
        self.crds_seconds = time.monotonic() - began

    async def grant_namespace(self, namespace: str) -> None:
        """Bind every sidecar identity's namespaced rules (leases, ...) in ``namespace``."""
        for identity in rbac.IDENTITIES:
            for obj in rbac.namespace_bindings(identity, namespace):
                await self.admin.ensure(rbac.api_path(obj), obj)

    async def create_namespace(self, name: str) -> None:
        """Create namespace ``name`` and grant the sidecar identities their rules in it."""
        await self.admin.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        await self.grant_namespace(name)
        await self.wait_default_service_account(name)

    async def _register_nodes(self) -> None:
        if self.kubelet:
            await self.start_real_nodes()
            return
        for name in self.node_names:
            created = await self.admin.create("/api/v1/nodes", objects.node(name))
            # Creation goes through TaintNodesByCondition, which adds the not-ready taint that
            # the (absent) node lifecycle controller would remove.
            await self.admin.patch(f"/api/v1/nodes/{name}", {"spec": {"taints": None}})
            await self.admin.patch(f"/api/v1/nodes/{name}/status", objects.node_status())
            await self.admin.create(
                "/apis/storage.k8s.io/v1/csinodes",
                objects.csinode(name, created["metadata"]["uid"]),
            )
