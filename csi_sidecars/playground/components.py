"""The control plane's processes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

:class:`Components` holds how each is started, restarted and compacted; :class:`ControlPlane`
(:mod:`.controlplane`) composes it with the node and workload helpers and owns the lifecycle.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.process import ManagedProcess, free_port
from csi_sidecars.playground.realnodes import RealNodes
from csi_sidecars.playground.workloads import (
    ADMIN,
    Identity,
    check_alive,
    wait_ready,
)
from csi_sidecars.runtime.logging import get_logger

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


def _short() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=3)


class Components(RealNodes):
    """Starting and restarting the control plane's own processes; ControlPlane sets the state."""

    api_port: int
    kcm_qps: float | None
    kcm_burst: int | None
    etcd_port: int
    identities: dict[str, Identity]
    _etcd: ManagedProcess | None
    _apiserver: ManagedProcess | None
    _components: list[ManagedProcess]

    @property
    def server(self) -> str:
        """The API server URL."""
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the API server's serving certificate."""
        assert self._pki is not None, "control plane not started"
        return self._pki.ca_cert

    @property
    def etcd_url(self) -> str:
        """The etcd client URL."""
        return f"http://127.0.0.1:{self.etcd_port}"

    def api(self, identity: str = ADMIN) -> RawApi:
        """A new raw API client acting as ``identity``; the caller closes it."""
        return RawApi(self.server, self.identities[identity].token, self.ca_file)

    async def _start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        peer_url = f"http://127.0.0.1:{peer}"
        self._etcd = ManagedProcess(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=testbed",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=testbed={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.log_path("etcd"),
        )
        await self._etcd.start()

        async def healthy() -> bool:
            check_alive(self._etcd)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{self.etcd_url}/health", timeout=_short()) as resp,
            ):
                return resp.status == 200 and json.loads(await resp.text()).get("health") == "true"

        await wait_ready(self._etcd, healthy, 30)

    def _apiserver_args(self) -> list[str]:
        assert self._pki is not None
        args = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.work_dir / 'apiserver'}",
            f"--tls-cert-file={self._pki.serving_cert}",
            f"--tls-private-key-file={self._pki.serving_key}",
            f"--token-auth-file={self.work_dir / 'pki' / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            # Node plugins run privileged (the Helm chart's DaemonSet); without this the API
            # server rejects their pod templates.
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self._pki.sa_pub}",
            f"--service-account-signing-key-file={self._pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # The kubernetes Service's endpoints would point at 127.0.0.1, which Endpoints
            # validation rejects; nothing in the testbed needs that Service.
            "--endpoint-reconciler-type=none",
            # Pods never run, so they need no service-account token; without the plugin a
            # pod can be created right after its namespace (no wait for the default SA).
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            f"-v={self.verbosity}",
        ]
        return self.real_node_apiserver_args(args)

    async def _start_apiserver_process(self) -> None:
        if self._apiserver is None:
            self._apiserver = ManagedProcess(
                "kube-apiserver", self._apiserver_args(), self.log_path("kube-apiserver")
            )
        await self._apiserver.start()
        probe = self.api(ADMIN)
        try:

            async def ready() -> bool:
                check_alive(self._apiserver)
                status, body = await probe.call("GET", "/readyz", timeout=5)
                return status == 200 and body == "ok"

            await wait_ready(self._apiserver, ready, 60)
        finally:
            await probe.close()

    async def stop_apiserver(self, grace: float = 3.0) -> None:
        """Stop kube-apiserver; clients see connection errors until it is back.

        SIGTERM first, SIGKILL after ``grace`` seconds: with controller-manager and scheduler
        still holding watch connections, a graceful kube-apiserver shutdown waits a long time
        for them to go away, and to a client both ends look the same (connections drop).
        """
        if self._apiserver is not None:
            await self._apiserver.stop(timeout=grace)
        if self._admin is not None:
            # Pooled keep-alive connections point at the dead server; start afresh.
            await self._admin.close()

    async def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port with the same keys; wait for /readyz."""
        await self._start_apiserver_process()

    async def compact_etcd(self, restart_apiserver: bool = False) -> int:
        """Compact etcd at its current revision, the way kube-apiserver's compactor does.

        The revision is also written to etcd's ``compact_rev_key``, which kube-apiserver
        watches, so reads that reach etcd at an older resourceVersion get ``410 Gone``. Watches
        are different: kube-apiserver serves them from its watch cache, which keeps at least
        75 s of events whatever etcd holds. With ``restart_apiserver`` the API server is
        restarted after the compaction; its new watch cache starts at the current revision, so
        a watch (or a client's re-watch after the dropped connection) from any older
        resourceVersion gets ``410 Gone`` at once, as after a long disconnection in production.

        Returns:
            The compacted revision.
        """
        key = base64.b64encode(b"compact_rev_key").decode()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.etcd_url}/v3/kv/range", json={"key": key}) as resp:
                resp.raise_for_status()
                revision = int(json.loads(await resp.text())["header"]["revision"])
            value = base64.b64encode(str(revision).encode()).decode()
            async with http.post(
                f"{self.etcd_url}/v3/kv/put", json={"key": key, "value": value}
            ) as resp:
                resp.raise_for_status()
            async with http.post(
                f"{self.etcd_url}/v3/kv/compaction",
                json={"revision": str(revision), "physical": True},
            ) as resp:
                resp.raise_for_status()
        if restart_apiserver:
            await self.stop_apiserver()
            await self.start_apiserver()
        return revision

    # -- controllers ---------------------------------------------------------------------

    def _kcm_args(self, port: int) -> list[str]:
        assert self._pki is not None
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig('kube-controller-manager')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.work_dir / 'kube-controller-manager'}",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS + self.real_node_controllers())}",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={self._pki.sa_key}",
            f"--root-ca-file={self._pki.ca_cert}",
            # Its default is a host directory it would create.
            f"--flex-volume-plugin-dir={self.work_dir / 'flexvolume'}",
            *([f"--kube-api-qps={self.kcm_qps:g}"] if self.kcm_qps is not None else []),
            *([f"--kube-api-burst={self.kcm_burst}"] if self.kcm_burst is not None else []),
            f"-v={self.verbosity}",
        ]

    def _scheduler_args(self, port: int) -> list[str]:
        return [
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig('kube-scheduler')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.work_dir / 'kube-scheduler'}",
            "--leader-elect=false",
            f"-v={self.verbosity}",
        ]

    async def _start_component(self, name: str, args_for: Any) -> None:
        port = free_port()
        proc = ManagedProcess(name, args_for(port), self.log_path(name))
        self._components.append(proc)
        await proc.start()

        async def healthy() -> bool:
            check_alive(proc)
            url = f"https://127.0.0.1:{port}/healthz"
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, ssl=False, timeout=_short()) as resp,
            ):
                return resp.status == 200

        await wait_ready(proc, healthy, 60)

    # -- cluster objects -----------------------------------------------------------------
