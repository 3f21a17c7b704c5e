"""The scripted playground tour behind ``csi-sidecars playground demo`` (and ``make demo``).

Each step creates objects, waits (with a deadline) for them to reach their state, and prints
what a user would look at with kubectl. A step whose csi-sidecars role is not implemented yet
uses the Go sidecar from the testbed when it is built, and says so; a step with neither is
skipped with the reason. The tour ends by deleting what it created and checking that the
driver's volumes are gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from csi_sidecars.playground import binaries, objects
from csi_sidecars.playground.demo_data import busybox_pod, data_step
from csi_sidecars.playground.driver import load_state
from csi_sidecars.playground.session import Playground

NS = "default"
SNAPSHOT_CONTENTS = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents"
Echo = Callable[..., None]


class Tour:
    """One run of the tour against a started playground."""

    def __init__(self, pg: Playground, echo: Echo) -> None:
        """Tour ``pg``, printing with ``echo``."""
        self.pg = pg
        self.cp = pg.control_plane
        self.echo = echo
        self.step = 0
        self.began = time.monotonic()

    def heading(self, text: str) -> None:
        """Print a numbered step heading."""
        self.step += 1
        self.echo(f"\n== {self.step}. {text}  [{time.monotonic() - self.began:5.1f}s]")

    async def show(self, *args: str) -> None:
        """Print a kubectl command and its output."""
        self.echo(f"$ kubectl {' '.join(args)}")
        self.echo((await self.cp.kubectl(*args)).rstrip())

    async def ensure_role(self, role: str) -> str | None:
        """Make sure ``role`` runs: ours if the playground runs it, else the Go sidecar.

        Returns:
            A description of who does the work, or None when neither is available.
        """
        if role in self.pg.roles:
            return f"csi-sidecars {role}"
        spec_binary = {"provisioner": "csi-provisioner", "attacher": "csi-attacher"}[role]
        if binaries.missing([spec_binary], self.cp.bin_dir):
            return None
        await self.cp.start_sidecar(role, implementation="go", verbosity=2)
        return f"the Go {spec_binary} (csi-sidecars {role} is not implemented yet)"

    async def http_get(self, role: str, path: str) -> tuple[int, str]:
        """GET ``path`` from the first running ``role``'s HTTP endpoint."""
        target = next(r for r in self.pg.running if r.role == role)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{target.http_port}{path}") as resp,
        ):
            return resp.status, await resp.text()

    async def run(self) -> None:
        """Run every step; raises on the first step that does not reach its state."""
        api = self.cp.admin
        if self.cp.real_nodes:
            self.heading("Nodes run by kubelet and containerd; kubelet wrote the CSINodes")
        else:
            self.heading("Nodes, CSINodes and the CSIDriver, as kubelet would have registered them")
        await self.show("get", "nodes,csinodes,csidrivers")

        if "node-driver-registrar" in self.pg.roles:
            kubelet = "kubelet" if self.cp.real_nodes else "(our stand-in for) kubelet"
            self.heading(f"node-driver-registrar: registered with {kubelet}")
            status, body = await self.http_get("node-driver-registrar", "/healthz/registration")
            self.echo(f"GET /healthz/registration -> {status} {body}")
            if status != 200:
                raise RuntimeError("the registrar did not report a confirmed registration")
        if "livenessprobe" in self.pg.roles:
            self.heading("livenessprobe: /healthz probes the driver")
            status, body = await self.http_get("livenessprobe", "/healthz")
            self.echo(f"GET /healthz -> {status} {body}")
            if status != 200:
                raise RuntimeError("livenessprobe does not report a healthy driver")

        self.heading("Dynamic provisioning: StorageClass (Immediate) + PVC")
        who = await self.ensure_role("provisioner")
        if who is None:
            self.echo("skipped: no provisioner (build the Go one with testbed/build.sh)")
            return
        self.echo(f"provisioning by {who}")
        await api.ensure(
            "/apis/storage.k8s.io/v1/storageclasses",
            objects.storage_class("demo-immediate", self.cp.driver_name),
        )
        await api.ensure(
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
            objects.pvc("demo-pvc", "demo-immediate", "1Gi"),
        )
        pvc = await api.wait_for(
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims/demo-pvc",
            lambda o: o.get("status", {}).get("phase") == "Bound",
            timeout=60,
            what="demo-pvc to be Bound",
        )
        await self.show("get", "storageclass,pvc,pv")
        self.echo(f"volume handle in the driver: {await self._volume_handle(pvc)}")

        await self._expansion()
        await data_step(self, NS, "demo-pvc")

        self.heading("WaitForFirstConsumer + a Pod: the scheduler picks the node, then attach")
        attacher = await self.ensure_role("attacher")
        await api.ensure(
            "/apis/storage.k8s.io/v1/storageclasses",
            objects.storage_class(
                "demo-wffc", self.cp.driver_name, binding_mode="WaitForFirstConsumer"
            ),
        )
        await api.ensure(
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
            objects.pvc("demo-wffc", "demo-wffc", "1Gi"),
        )
        await api.ensure(f"/api/v1/namespaces/{NS}/pods", self._app_pod("demo-pod", "demo-wffc"))
        claim = await api.wait_for(
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims/demo-wffc",
            lambda o: o.get("status", {}).get("phase") == "Bound",
            timeout=90,
            what="demo-wffc to be Bound after scheduling",
        )
        node = claim["metadata"].get("annotations", {}).get("volume.kubernetes.io/selected-node")
        self.echo(f"the scheduler selected node {node}")
        if attacher is None:
            self.echo("attach skipped: no attacher (build the Go one with testbed/build.sh all)")
        else:
            self.echo(f"attaching by {attacher}")
            pv_name = claim["spec"]["volumeName"]
            va = await self._wait_attached(pv_name)
            self.echo(f"VolumeAttachment {va['metadata']['name']} attached to {node}")
            await self.show("get", "volumeattachments")

        await self._snapshot()

        self.heading("Clean-up: delete the Pod and the PVCs; volumes are detached and deleted")
        if self.cp.real_nodes:
            # kubelet stops the pod and unmounts its volume; wait for that before the claims go.
            await self.cp.kubectl("delete", "pod", "demo-pod", "-n", NS, "--wait=true")
        else:
            await self.cp.kubectl(
                "delete", "pod", "demo-pod", "-n", NS, "--grace-period=0", "--force", "--wait=false"
            )
        await self.cp.kubectl(
            "delete", "volumesnapshots", "--all", "-n", NS, "--wait=false", "--ignore-not-found"
        )
        await self.cp.kubectl("delete", "pvc", "--all", "-n", NS, "--wait=false")
        await self._wait_empty(SNAPSHOT_CONTENTS, 120, "VolumeSnapshotContents to be deleted")
        await self._wait_empty("/api/v1/persistentvolumes", 120, "PVs to be deleted")
        await self._wait_empty("/apis/storage.k8s.io/v1/volumeattachments", 120, "detach")
        volumes = self._driver_volumes()
        snapshots = self._driver_snapshots()
        self.echo(
            f"PVs: 0, VolumeAttachments: 0, VolumeSnapshotContents: 0; left in the driver: "
            f"volumes {volumes}, snapshots {snapshots}"
        )
        if volumes or snapshots:
            raise RuntimeError(f"left in the driver: volumes {volumes}, snapshots {snapshots}")

    def _app_pod(self, name: str, claim: str) -> dict[str, Any]:
        """A pod using ``claim``: busybox that runs on a real node, else one that never runs."""
        if self.cp.real_nodes:
            return busybox_pod(name, claim, "sleep 3600")
        return objects.pod(name, [claim])

    async def _snapshot(self) -> None:
        """Snapshot demo-pvc: the snapshot-controller binds a content, the snapshotter cuts it."""
        self.heading("Snapshots: a VolumeSnapshot of demo-pvc")
        if not {"snapshot-controller", "snapshotter"} <= set(self.pg.roles):
            self.echo("skipped: csi-sidecars snapshot-controller and snapshotter are not running")
            return
        api = self.cp.admin
        await api.ensure(
            "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses",
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {"name": "demo-snapclass"},
                "driver": self.cp.driver_name,
                "deletionPolicy": "Delete",
            },
        )
        await api.ensure(
            f"/apis/snapshot.storage.k8s.io/v1/namespaces/{NS}/volumesnapshots",
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {"name": "demo-snap"},
                "spec": {
                    "volumeSnapshotClassName": "demo-snapclass",
                    "source": {"persistentVolumeClaimName": "demo-pvc"},
                },
            },
        )
        vs = await api.wait_for(
            f"/apis/snapshot.storage.k8s.io/v1/namespaces/{NS}/volumesnapshots/demo-snap",
            lambda o: bool(o.get("status", {}).get("readyToUse")),
            timeout=60,
            what="demo-snap to be ready to use",
        )
        await self.show("get", "volumesnapshot,volumesnapshotcontent", "-n", NS)
        content = vs["status"]["boundVolumeSnapshotContentName"]
        vsc = await api.get(f"{SNAPSHOT_CONTENTS}/{content}")
        self.echo(
            f"snapshot handle in the driver: {vsc['status']['snapshotHandle']}, "
            f"restore size {vs['status'].get('restoreSize')}"
        )

        self.heading("Restore: a new PVC from demo-snap")
        claim = objects.pvc("demo-restore", "demo-immediate", str(vs["status"]["restoreSize"]))
        claim["spec"]["dataSource"] = {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": "demo-snap",
        }
        await api.ensure(f"/api/v1/namespaces/{NS}/persistentvolumeclaims", claim)
        restored = await api.wait_for(
            f"/api/v1/namespaces/{NS}/persistentvolumeclaims/demo-restore",
            lambda o: o.get("status", {}).get("phase") == "Bound",
            timeout=60,
            what="demo-restore to be Bound",
        )
        await self.show("get", "pvc", "demo-restore", "-n", NS)
        handle = await self._volume_handle(restored)
        source = self._volume_source(handle)
        self.echo(f"restored volume {handle} from snapshot {source}")
        if source != vsc["status"]["snapshotHandle"]:
            raise RuntimeError(f"volume {handle} was not restored from the snapshot: {source}")

    async def _expansion(self) -> None:
        """Grow demo-pvc to 2Gi: the resizer expands the volume; the node step is pending."""
        self.heading("Volume expansion: demo-pvc requests 2Gi")
        if "resizer" not in self.pg.roles:
            self.echo("skipped: csi-sidecars resizer is not running")
            return
        path = f"/api/v1/namespaces/{NS}/persistentvolumeclaims/demo-pvc"
        await self.cp.kubectl(
            "patch", "pvc", "demo-pvc", "-n", NS, "--type=merge",
            "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}',
        )  # fmt: skip
        pvc = await self.cp.admin.wait_for(
            path,
            lambda o: (
                (o.get("status", {}).get("allocatedResourceStatuses") or {}).get("storage")
                == "NodeResizePending"
            ),
            timeout=60,
            what="demo-pvc to wait for the node step of its expansion",
        )
        pv = await self.cp.admin.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        self.echo(
            f"PV capacity {pv['spec']['capacity']['storage']}, PVC allocated "
            f"{pvc['status']['allocatedResources']['storage']}, conditions "
            f"{[c['type'] for c in pvc['status'].get('conditions', [])]}"
        )
        await self.show("get", "pvc", "demo-pvc", "-n", NS)

    async def _volume_handle(self, pvc: dict[str, Any]) -> str:
        pv = await self.cp.admin.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        return str(pv["spec"]["csi"]["volumeHandle"])

    async def _wait_attached(self, pv_name: str) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            vas = await self.cp.admin.get("/apis/storage.k8s.io/v1/volumeattachments")
            for va in vas.get("items", []):
                if va["spec"]["source"].get("persistentVolumeName") == pv_name and va.get(
                    "status", {}
                ).get("attached"):
                    return dict(va)
            await asyncio.sleep(0.5)
        raise TimeoutError(f"no attached VolumeAttachment for {pv_name} within 90s")

    async def _wait_empty(self, path: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (await self.cp.admin.get(path)).get("items"):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {what}")

    def _volume_source(self, handle: str) -> str | None:
        """The snapshot a driver volume was created from (None: not from a snapshot)."""
        for driver in self.cp.drivers:
            if driver.state_dir is not None:
                volume = load_state(driver.state_dir).volumes.get(handle)
                if volume is not None:
                    return volume.source_snapshot_id or None
        return None

    def _driver_snapshots(self) -> list[str]:
        names: list[str] = []
        for driver in self.cp.drivers:
            if driver.state_dir is not None:
                names.extend(load_state(driver.state_dir).snapshots)
        return names

    def _driver_volumes(self) -> list[str]:
        names: list[str] = []
        for driver in self.cp.drivers:
            if driver.state_dir is not None:
                names.extend(load_state(driver.state_dir).volumes)
        return names


async def run_tour(pg: Playground, stop: asyncio.Event, echo: Echo) -> int:
    """Run the tour; returns the exit code (0 when every step reached its state)."""
    tour = Tour(pg, echo)
    task = asyncio.ensure_future(tour.run())
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task not in done:
        task.cancel()
        echo("\ninterrupted")
        return 130
    try:
        task.result()
    except Exception as err:
        echo(f"\nFAILED: {err}")
        for log in sorted((pg.control_plane.work_dir / "logs").glob("*.log")):
            if log.stem.startswith(("etcd", "kube-")):
                continue
            tail = log.read_text(errors="replace").splitlines()[-15:]
            echo(f"--- last lines of {log} ---")
            echo("\n".join(tail))
        return 1
    echo(f"\ntour finished in {time.monotonic() - tour.began:.1f}s; every step reached its state")
    return 0
