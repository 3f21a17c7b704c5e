"""What the chart renders, run under the chart's own RBAC on the testbed.

The chart is installed with ``helm install``; the installed Deployment and DaemonSet are read
back from the API server, and each csi-sidecars container runs as a local process the way the
container would: its command and args as stored, its environment (downward API resolved), and
the identity of its pod's ServiceAccount (a TokenRequest token in a kubeconfig; the node pods
mount no token). Only what a local process must change is rewritten: ``--csi-address`` (the
local driver socket), ``--http-endpoint`` (a free 127.0.0.1 port: in the pod it is the pod's
network namespace), and node-driver-registrar's kubelet paths. Then the roles provision, attach,
detach, expand, snapshot, restore (by ``dataSource`` and ``dataSourceRef``, with the
provisioner's and the snapshot controller's protections of the source, and from a member of a
group snapshot: ``CSIVolumeGroupSnapshot`` on through the chart's ``extraArgs``) and delete with
the chart's rules and no others; without one rule a role logs a clear 403; ``helm upgrade``
puts the rule back and the role recovers; ``helm uninstall`` takes the CSIDriver the registrar
made along (its ownerReference).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.cli import ROLES
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import write_faults_file
from csi_sidecars.playground.process import ManagedProcess, poll_until
from tests.e2e.chart_flows import (
    Backend,
    attach_and_detach,
    expand,
    restore_from_group_member,
    restore_from_snapshot,
    snapshot_and_delete,
)
from tests.e2e.chart_support import (
    CSIDRIVERS,
    RBAC,
    ChartContainer,
    HelmCli,
    HelmError,
    chart_containers,
    container_env,
    driver_values,
    role_command,
    service_account_token,
    token_kubeconfig,
    unique,
)
from tests.e2e.conftest import require
from tests.support.net import http_get

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PREFIX = "rb-csi-sidecars"
PV = "/api/v1/persistentvolumes"
CSINODES = "/apis/storage.k8s.io/v1/csinodes"
#: Group snapshots are beta and off by default (as in Go): the chart turns them on by extraArgs.
GROUP_GATE = "--feature-gates=CSIVolumeGroupSnapshot=true"


@dataclass
class Release:
    """The installed release, its driver and the role processes started from it."""

    cp: ControlPlane
    helm: HelmCli
    namespace: str
    driver: str
    socket: Path
    storage_class: str
    values: dict[str, Any]
    work: Path
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def api(self) -> RawApi:
        return self.cp.admin

    @property
    def backend(self) -> Backend:
        """The driver's state and faults files."""
        return Backend(self.work / "state", self.work / "faults.json")

    async def containers(self) -> list[ChartContainer]:
        """The csi-sidecars containers of the installed controller Deployment and DaemonSet."""
        apps = f"/apis/apps/v1/namespaces/{self.namespace}"
        found: list[ChartContainer] = []
        for path in (
            "deployments/rb-csi-sidecars-controller",
            "daemonsets/rb-csi-sidecars-node",
            "deployments/rb-csi-sidecars-snapshot-controller",
        ):
            found += chart_containers(await self.api.get(f"{apps}/{path}"))
        return found

    async def start(self, container: ChartContainer, key: str) -> ManagedProcess:
        """Run ``container`` as a local process under its ServiceAccount's identity."""
        node = self.cp.node_names[0]
        env = container_env(
            container, namespace=self.namespace, pod=f"{container.workload}-e2e", node=node
        )
        if container.automount:
            token = await service_account_token(self.api, self.namespace, container.service_account)
            env["KUBECONFIG"] = str(
                token_kubeconfig(self.cp, token, self.work / f"{key}.kubeconfig")
            )
        else:
            env["KUBECONFIG"] = str(self.work / "no-such.kubeconfig")
        registry = None
        if container.role == "node-driver-registrar":
            registry = Path(tempfile.mkdtemp(prefix="reg-", dir=self.work))
        cmd = role_command(container, env, socket=self.socket, registry_dir=registry)
        if container.role != "snapshot-controller":  # the one role without a driver
            assert cmd.rewritten.get("--csi-address") == "/csi/csi.sock", cmd.rewritten
        proc = await self.cp.start_process(f"chart-{key}", cmd.argv, cmd.env)
        self.processes[key] = proc
        self.ports[key] = cmd.http_port
        return proc

    def log(self, key: str) -> str:
        return self.processes[key].log_path.read_text(errors="replace")


@pytest_asyncio.fixture(loop_scope="session")
async def release(control_plane: ControlPlane, tmp_path: Path) -> AsyncIterator[Release]:
    """The chart installed for a driver of its own (attach enabled), registered on node-1."""
    require("helm")
    cp = control_plane
    api = cp.admin
    namespace = unique("rb")
    await api.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    name = f"rb-{uuid.uuid4().hex[:6]}.csi.example.com"
    work = Path(tempfile.mkdtemp(prefix="rb-"))
    (work / "state").mkdir()
    socket = work / "csi.sock"
    write_faults_file(work / "faults.json", [])
    driver = await cp.start_process(
        f"driver-{name}",
        [
            sys.executable,
            "-m",
            "csi_sidecars.playground.driver",
            f"--endpoint=unix://{socket}",
            f"--nodeid={cp.node_names[0]}",
            f"--drivername={name}",
            f"--statedir={work / 'state'}",
            f"--faults-file={work / 'faults.json'}",
            "--enable-attach",
            "--enable-volume-expansion",
            "--disable-node-expansion",
        ],
    )

    async def listening() -> bool:
        assert driver.running, driver.log_tail()
        return socket.exists()

    await poll_until(listening, 30, "the driver socket", fatal=(AssertionError,))
    await cp.register_driver(cp.node_names[0], driver_name=name)
    storage_class = unique("rb-sc")
    values = driver_values(
        name,
        controller={
            "resizer": {"enabled": True},
            "snapshotter": {"enabled": True, "extraArgs": [GROUP_GATE]},
        },
        snapshotController={"enabled": True, "extraArgs": [GROUP_GATE]},
        storageClasses=[
            {
                "name": storage_class,
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": True,
            }
        ],
    )
    helm = HelmCli(cp, tmp_path)
    await helm.install("rb", namespace, values)
    rel = Release(cp, helm, namespace, name, socket, storage_class, values, work)
    try:
        yield rel
    finally:
        for proc in rel.processes.values():
            await proc.stop(timeout=10)
        with contextlib.suppress(HelmError):  # the test uninstalls it unless it failed first
            await helm.uninstall("rb", namespace)
        await driver.stop(timeout=5)
        await api.delete(f"{CSIDRIVERS}/{name}")
        path = f"{CSINODES}/{cp.node_names[0]}"
        current = await api.get(path)
        current["spec"]["drivers"] = [d for d in current["spec"]["drivers"] if d["name"] != name]
        await api.replace(path, current)
        await api.delete(f"/api/v1/namespaces/{namespace}")
        shutil.rmtree(work, ignore_errors=True)


def _forbidden_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "forbidden" in line.lower()]


async def _get_ok(port: int, path: str) -> bool:
    answer = await http_get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return answer is not None and answer[0] == 200


def _phase_bound(obj: dict[str, Any]) -> bool:
    return obj.get("status", {}).get("phase") == "Bound"


async def _start_all(release: Release) -> dict[str, ChartContainer]:
    """Start every csi-sidecars container of the release; return them by key."""
    keys: dict[str, ChartContainer] = {}
    for container in await release.containers():
        workload = container.workload.removeprefix(PREFIX + "-")
        keys[f"{workload}-{container.role}"] = container
    assert {c.role for c in keys.values()} <= set(ROLES), "the chart runs a role the CLI lacks"
    for key, container in keys.items():
        await release.start(container, key)
    assert set(release.processes) == {
        "controller-provisioner",
        "controller-attacher",
        "controller-snapshotter",
        "controller-resizer",
        "controller-cluster-driver-registrar",
        "controller-livenessprobe",
        "node-node-driver-registrar",
        "node-livenessprobe",
        "snapshot-controller-snapshot-controller",
    }
    return keys


async def _recreate_on_immutable_change(release: Release, keys: dict[str, ChartContainer]) -> None:
    """helm upgrade changes volumeLifecycleModes; the registrar re-created with the new args
    replaces the CSIDriver (delete + apply, with its owner) under the chart's rules."""
    api, path = release.api, f"{CSIDRIVERS}/{release.driver}"
    old_uid = (await api.get(path))["metadata"]["uid"]
    release.values["csiDriver"] = {"volumeLifecycleModes": ["Persistent", "Ephemeral"]}
    await release.helm.upgrade("rb", release.namespace, release.values)
    await release.processes.pop("controller-cluster-driver-registrar").stop(timeout=10)
    (registrar,) = [c for c in await release.containers() if c.role == "cluster-driver-registrar"]
    assert "--volume-lifecycle-modes=Persistent,Ephemeral" in registrar.args
    keys["controller-cluster-driver-registrar"] = registrar
    await release.start(registrar, "controller-cluster-driver-registrar-2")
    recreated = await api.wait_for(
        path,
        lambda o: (
            o["metadata"]["uid"] != old_uid
            and sorted(o["spec"].get("volumeLifecycleModes", [])) == ["Ephemeral", "Persistent"]
        ),
        what="the CSIDriver re-created with the new modes",
    )
    assert recreated["metadata"]["ownerReferences"][0]["kind"] == "ClusterRole"


async def test_chart_roles_work_under_the_chart_rbac(release: Release) -> None:
    api, ns = release.api, release.namespace
    keys = await _start_all(release)

    # cluster-driver-registrar: the CSIDriver, owned by the registrar's ClusterRole
    owner = await api.get(f"{RBAC}/clusterroles/{PREFIX}-cluster-driver-registrar")
    csidriver = await api.wait_for(
        f"{CSIDRIVERS}/{release.driver}",
        lambda o: bool(o["metadata"].get("ownerReferences")),
        what="the CSIDriver with its owner",
    )
    assert csidriver["spec"]["attachRequired"] is True
    assert [o["uid"] for o in csidriver["metadata"]["ownerReferences"]] == [
        owner["metadata"]["uid"]
    ]

    # provisioner, attacher, resizer, snapshot controller + snapshotter
    claims = f"/api/v1/namespaces/{ns}/persistentvolumeclaims"
    await api.create(claims, objects.pvc("first", release.storage_class))
    bound = await api.wait_for(f"{claims}/first", _phase_bound, what="first bound")
    pv_name = bound["spec"]["volumeName"]
    assert (await api.get(f"{PV}/{pv_name}"))["spec"]["csi"]["driver"] == release.driver
    await attach_and_detach(api, release.driver, release.cp.node_names[0], pv_name)
    await expand(api, ns, "first")
    await snapshot_and_delete(api, ns, release.driver, "first")
    # restore: from a snapshot of "first" (protected while restoring), from a group member
    sc, backend = release.storage_class, release.backend
    restored = await restore_from_snapshot(api, ns, release.driver, sc, "first", backend)
    restored += await restore_from_group_member(api, ns, release.driver, sc, backend)
    for claim in restored:
        await api.delete(f"{claims}/{claim}")
    for key in ("controller-livenessprobe", "node-livenessprobe"):
        await poll_until(lambda k=key: _get_ok(release.ports[k], "/healthz"), 30, f"{key} up")
    # every container's liveness probe, as rendered, passes on its own port
    probed = []
    for key, container in keys.items():
        if container.liveness_path and key in release.processes:
            path = container.liveness_path
            await poll_until(
                lambda k=key, p=path: _get_ok(release.ports[k], p), 30, f"{key} {path}"
            )
            probed.append(key)
    assert len(probed) == 7, probed  # all but the two livenessprobes (probed above)
    await _recreate_on_immutable_change(release, keys)
    await api.delete(f"{claims}/first")
    await api.wait_deleted(f"{PV}/{pv_name}", 60)

    # every role is still running and none was refused anything
    for key, proc in release.processes.items():
        assert proc.running, f"{key} exited:\n{proc.log_tail(40)}"
        assert _forbidden_lines(release.log(key)) == [], key

    # without one rule of its ClusterRole, the provisioner logs a clear 403 ...
    role_path = f"{RBAC}/clusterroles/{PREFIX}-provisioner"
    role = await api.get(role_path)
    (index,) = [i for i, r in enumerate(role["rules"]) if r["resources"] == ["storageclasses"]]
    await api.patch(role_path, [{"op": "remove", "path": f"/rules/{index}"}], kind="json")
    await release.processes.pop("controller-provisioner").stop(timeout=10)
    await release.start(keys["controller-provisioner"], "controller-provisioner-2")
    await api.create(claims, objects.pvc("second", release.storage_class))

    async def refused() -> list[str] | None:
        lines = _forbidden_lines(release.log("controller-provisioner-2"))
        return [line for line in lines if "storageclasses" in line] or None

    (line, *_) = await poll_until(refused, 60, "the provisioner's 403 on storageclasses")
    assert '"List/watch failed" resource="storageclasses" error="403 Forbidden' in line
    assert (
        f'User \\"system:serviceaccount:{ns}:{PREFIX}-controller\\" cannot list resource '
        '\\"storageclasses\\"'
    ) in line
    assert (await api.get(f"{claims}/second"))["status"].get("phase") == "Pending"

    # ... and once helm upgrade restores it, the provisioner recovers on its own
    await release.helm.upgrade("rb", ns, release.values)
    restored = await api.get(role_path)
    assert any(r["resources"] == ["storageclasses"] for r in restored["rules"])
    await api.wait_for(f"{claims}/second", _phase_bound, timeout=120, what="second bound")
    await api.delete(f"{claims}/second")
    await poll_until(lambda: _no_volumes_of(api, release.driver), 60, "the volumes deleted")

    # helm uninstall: the pods would go, and the CSIDriver goes with the registrar's ClusterRole
    for proc in release.processes.values():
        await proc.stop(timeout=10)
    release.processes.clear()
    await release.helm.uninstall("rb", ns)
    await api.wait_deleted(f"{CSIDRIVERS}/{release.driver}", 60)
    assert await api.get_or_none(role_path) is None


async def _no_volumes_of(api: RawApi, driver: str) -> bool:
    listed = await api.get(PV)
    return not [p for p in listed["items"] if p["spec"].get("csi", {}).get("driver") == driver]
