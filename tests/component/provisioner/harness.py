"""The provisioner, wired as in production, against the in-memory kube fake and the playground
driver.

:class:`Env` runs :func:`~csi_sidecars.provisioner.command.run_provisioner` (the shared
controller runner with ``port=`` the fake and ``conn=`` a connection to the in-process driver)
in a task, and plays the parts of the cluster the fake does not: it creates StorageClasses,
claims (annotated as kube-controller-manager does), nodes and CSINodes, and marks PVs Released
the way the PV controller would. Events are read back from the fake, as the recorder wrote them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import Connection, LossPolicy, connect
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import (
    CSI_NODES,
    EVENTS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    ApiError,
    JsonDict,
)
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS
from csi_sidecars.playground.driver import Driver, run_driver
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY
from csi_sidecars.provisioner.command import run_provisioner
from csi_sidecars.provisioner.controller import ProvisionerController
from csi_sidecars.provisioner.flags import ProvisionerConfig
from csi_sidecars.runtime.options import CsiOptions, RetryOptions

DRIVER = "hostpath.csi.k8s.io"
NS = "default"

Recorded = tuple[str, str, str, str]
"""An event as (object name, type, reason, message)."""


class Events:
    """The events the provisioner recorded, read from the fake (a repeated event once per count)."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    @property
    def items(self) -> list[Recorded]:
        out: list[Recorded] = []
        for ev in self.kube.objects(EVENTS):
            item = (ev["involvedObject"]["name"], ev["type"], ev["reason"], ev["message"])
            out.extend([item] * int(ev.get("count") or 1))
        return out

    def of(self, name: str, reason: str | None = None) -> list[Recorded]:
        return [e for e in self.items if e[0] == name and (reason is None or e[2] == reason)]


async def poll(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Wait until ``check()`` is truthy; return its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


def storage_class(name: str = "fast", **fields: Any) -> JsonDict:
    body: JsonDict = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": DRIVER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    body.update(fields)
    return body


def claim(name: str, storage: str = "1Gi", sc: str = "fast", **spec: Any) -> JsonDict:
    annotations = spec.pop("annotations", {})
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"volume.kubernetes.io/storage-provisioner": DRIVER, **annotations},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage}},
            "storageClassName": sc,
            **spec,
        },
    }


def provisioner_config(**overrides: Any) -> ProvisionerConfig:
    """Flags for the tests: fast retries, few workers; ``retry_max`` is --retry-interval-max."""
    return ProvisionerConfig(
        csi=CsiOptions(timeout=overrides.pop("timeout", 5.0)),
        retry=RetryOptions(0.02, overrides.pop("retry_max", 0.2)),
        kube=KubeOptions(leader_election_namespace=NS),
        worker_threads=overrides.pop("workers", 4),
        **overrides,
    )


class Env:
    """A running provisioner and handles on everything around it."""

    def __init__(self, kube: FakeKube, driver: Driver) -> None:
        self.kube = kube
        self.driver = driver
        self.events = Events(kube)
        self.ctrl: ProvisionerController | None = None
        self.conn: Connection | None = None
        self._task: asyncio.Task[int] | None = None
        self._stop = asyncio.Event()

    @property
    def identity(self) -> str:
        """The provisioner identity of the running controller."""
        assert self.ctrl is not None
        return self.ctrl.identity

    async def start(self, **overrides: Any) -> ProvisionerController:
        """Start a provisioner (a fresh one, as after a restart) with its own connection."""
        environ = overrides.pop("environ", {})
        config = provisioner_config(**overrides)
        self.conn = await connect(self.driver.endpoint, timeout=5, on_lost=LossPolicy.RECONNECT)
        self._stop = asyncio.Event()
        declared: list[ProvisionerController] = []
        task = asyncio.create_task(
            run_provisioner(
                config,
                self._stop,
                port=self.kube,
                conn=self.conn,
                on_setup=declared.append,
                env=environ,
            )
        )
        self._task = task

        def ready() -> ProvisionerController | None:
            assert not task.done(), f"the provisioner exited with {task.result()}"
            return declared[0] if declared else None

        self.ctrl = await poll(ready, what="the provisioner set up")
        return self.ctrl

    async def stop(self) -> None:
        """SIGTERM: the provisioner finishes what it holds and exits 0."""
        if self._task is not None:
            self._stop.set()
            code = await asyncio.wait_for(self._task, 20)
            self._task = None
            assert code == 0
        await self._close()

    async def crash(self) -> None:
        """Stop the provisioner abruptly, as a SIGKILL would (minus the process): the runner is
        cancelled and its driver connection cut, so an in-flight call never gets its answer."""
        if self._task is not None:
            self._task.cancel()
            await self._close()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def flush_events(self) -> None:
        """Wait until every event recorded so far is written to the fake."""
        assert self.ctrl is not None
        await asyncio.wait_for(self.ctrl.ctx.recorder.flush(), 5)

    # -- objects --------------------------------------------------------------------------

    async def add_node(self, name: str, topology: bool = True) -> None:
        labels = {TOPOLOGY_KEY: name} if topology else {}
        await self.kube.create(NODES, {"metadata": {"name": name, "labels": labels}})
        drivers = [{"name": DRIVER, "nodeID": name, "topologyKeys": [TOPOLOGY_KEY]}]
        await self.kube.create(
            CSI_NODES, {"metadata": {"name": name}, "spec": {"drivers": drivers}}
        )

    async def add_class(self, name: str = "fast", **fields: Any) -> JsonDict:
        return await self.kube.create(STORAGE_CLASSES, storage_class(name, **fields))

    async def add_claim(self, name: str, **kw: Any) -> JsonDict:
        body = claim(name, **kw)
        body["metadata"]["uid"] = str(uuid.uuid4())
        return await self.kube.create(PERSISTENT_VOLUME_CLAIMS, body, NS)

    async def add_snapshot(
        self,
        name: str,
        *,
        ready: bool = True,
        restore_size: str | None = "1Gi",
        driver: str = DRIVER,
        source_size: int = 1 << 30,
        member_of: str = "",
    ) -> tuple[JsonDict, str]:
        """A snapshot in the driver (of a fresh volume) and its VolumeSnapshot and bound
        VolumeSnapshotContent in the fake, as the snapshot controller and sidecar leave them
        (``member_of``: as a member of that VolumeGroupSnapshot). Returns (VS, snapshot ID)."""
        from csi_sidecars.playground.driver.core import VolumeCap

        state = self.driver.state
        vol = state.create_volume(f"src-{name}", [VolumeCap()], required_bytes=source_size)
        snap = state.create_snapshot(f"snap-{name}", vol.volume_id)
        content_name = f"snapcontent-{name}"
        vs_uid = str(uuid.uuid4())
        content: JsonDict = {
            "metadata": {"name": content_name},
            "spec": {
                "driver": driver,
                "deletionPolicy": "Delete",
                "source": {"volumeHandle": vol.volume_id},
                "sourceVolumeMode": "Filesystem",
                "volumeSnapshotRef": {"name": name, "namespace": NS, "uid": vs_uid},
            },
            "status": {"snapshotHandle": snap.snapshot_id, "readyToUse": ready},
        }
        status: JsonDict = {"boundVolumeSnapshotContentName": content_name, "readyToUse": ready}
        if restore_size is not None:
            status["restoreSize"] = restore_size
        meta: JsonDict = {"name": name, "namespace": NS, "uid": vs_uid}
        spec: JsonDict = {"source": {"persistentVolumeClaimName": f"src-{name}"}}
        if member_of:
            status["volumeGroupSnapshotName"] = member_of
            meta["ownerReferences"] = [
                {"apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot",
                 "name": member_of, "uid": str(uuid.uuid4())}
            ]  # fmt: skip
            spec = {"source": {"persistentVolumeClaimName": ""}}
            content["metadata"]["annotations"] = {
                "groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle": f"group-{member_of}"
            }
        await self.kube.create(VOLUME_SNAPSHOT_CONTENTS, content)
        body = {"metadata": meta, "spec": spec, "status": status}
        return await self.kube.create(VOLUME_SNAPSHOTS, body, NS), snap.snapshot_id

    def snapshot(self, name: str) -> JsonDict | None:
        return self.kube.peek(VOLUME_SNAPSHOTS, name, NS)

    def pvc(self, name: str) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUME_CLAIMS, name, NS)

    def pv(self, name: str) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUMES, name)

    def pv_of(self, pvc: JsonDict) -> JsonDict | None:
        return self.pv(f"pvc-{pvc['metadata']['uid']}")

    def volumes(self) -> dict[str, Any]:
        return dict(self.driver.state.data.volumes)

    async def bind(self, pvc_name: str) -> JsonDict:
        """Do what the PV controller does once the PV exists: bind both sides."""
        first = self.pvc(pvc_name)
        assert first is not None
        pv: JsonDict = await poll(lambda: self.pv_of(first), what=f"PV of {pvc_name}")
        for _ in range(20):
            pvc = self.pvc(pvc_name)
            assert pvc is not None
            pvc["spec"]["volumeName"] = pv["metadata"]["name"]
            try:
                await self.kube.replace(PERSISTENT_VOLUME_CLAIMS, pvc, NS)
                break
            except ApiError as exc:
                if not exc.conflict:
                    raise
        await self.kube.patch(
            PERSISTENT_VOLUME_CLAIMS, pvc_name, {"status": {"phase": "Bound"}}, NS,
            subresource="status",
        )  # fmt: skip
        await self.kube.patch(
            PERSISTENT_VOLUMES, pv["metadata"]["name"], {"status": {"phase": "Bound"}},
            subresource="status",
        )  # fmt: skip
        return pv

    async def release(self, pv_name: str) -> None:
        """Mark a PV Released, as the PV controller does when its claim is gone."""
        await self.kube.patch(
            PERSISTENT_VOLUMES, pv_name, {"status": {"phase": "Released"}}, subresource="status"
        )

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until the controller has nothing queued or in progress (and its events are out)."""
        assert self.ctrl is not None
        ctrl = self.ctrl
        await poll(ctrl.idle, timeout, "controller idle")
        await self.flush_events()


@contextlib.asynccontextmanager
async def environment(tmp_path: Path, **driver_options: Any) -> AsyncIterator[Env]:
    """A fake cluster with one node, the playground driver, and (not yet started) a provisioner."""
    kube = FakeKube()
    async with run_driver(tmp_path, driver_name=DRIVER, **driver_options) as drv:
        env = Env(kube, drv)
        try:
            await env.add_node("node-1")
            yield env
        finally:
            await env.stop()
