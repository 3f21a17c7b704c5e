"""The controller bundle on the kube fake and the playground driver: provisioner, attacher and
resizer in one event loop, one driver connection, shared informers, per-role Leases."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.attacher.command import run_attacher
from csi_sidecars.attacher.flags import AttacherFlags
from csi_sidecars.controller.bundle import ControllerBundle, joined
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import (
    CSI_NODES,
    LEASES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    VOLUME_ATTACHMENTS,
    JsonDict,
)
from csi_sidecars.playground.driver.server import run_driver
from csi_sidecars.provisioner.command import run_provisioner
from csi_sidecars.provisioner.flags import ProvisionerConfig
from csi_sidecars.resizer import names as resizer_names
from csi_sidecars.resizer.command import run_resizer
from csi_sidecars.resizer.controller import ResizerConfig
from csi_sidecars.run.supervise import supervise
from csi_sidecars.runtime.featuregates import parse_gates
from csi_sidecars.runtime.options import CsiOptions, HttpOptions, RetryOptions

DRIVER = "bundle.csi.test"
NS = "ns1"
NODE = "node-1"
GIB = 1024**3
DRIVER_OPTIONS: dict[str, Any] = {
    "driver_name": DRIVER,
    "enable_attach": True,
    "enable_topology": False,
}


async def poll(cond: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert loop.time() < deadline, f"timed out waiting for {what or cond}"
        await asyncio.sleep(0.02)


class _Held:
    """The fake as the leader-election client (closing it does nothing)."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    async def __aenter__(self) -> FakeKube:
        return self.kube

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass(slots=True)
class FakeLeases(KubeOptions):
    """Leader election on: the Leases go to the fake."""

    fake: FakeKube | None = None

    async def leader_election_client(self, role: str) -> Any:
        return _Held(self.fake) if self.fake is not None else None


KUBE: FakeKube | None = None


def kube_options() -> KubeOptions:
    return FakeLeases(leader_election=True, leader_election_namespace=NS, fake=KUBE)


def mains(endpoint: str, kube: FakeKube) -> dict[str, Callable[[asyncio.Event], Awaitable[int]]]:
    global KUBE
    KUBE = kube
    prov = ProvisionerConfig(
        csi=CsiOptions(address=endpoint, timeout=5.0),
        retry=RetryOptions(0.02, 0.2),
        kube=kube_options(),
        worker_threads=2,
    )
    att = AttacherFlags(
        csi=CsiOptions(address=endpoint, timeout=5.0),
        retry=RetryOptions(0.02, 0.2),
        kube=kube_options(),
    )
    rsz = ResizerConfig(timeout=5.0, resync=0.0, workers=2, retry_start=0.02, retry_max=0.2)
    return {
        "provisioner": lambda stop: run_provisioner(prov, stop, port=kube, env={}),
        "attacher": lambda stop: run_attacher(att, stop, port=kube),
        "resizer": lambda stop: run_resizer(
            rsz,
            parse_gates((), resizer_names.GATES),
            CsiOptions(endpoint, 5.0),
            HttpOptions(),
            kube_options(),
            stop,
            port=kube,
        ),
    }


async def in_bundle(
    bundle: ControllerBundle,
    name: str,
    main: Callable[[asyncio.Event], Awaitable[int]],
    stop: asyncio.Event,
) -> int:
    with joined(bundle, name):
        return await main(stop)


async def objects(kube: FakeKube) -> None:
    await kube.create(NODES, {"metadata": {"name": NODE, "labels": {}}})
    await kube.create(
        CSI_NODES,
        {
            "metadata": {"name": NODE},
            "spec": {"drivers": [{"name": DRIVER, "nodeID": NODE, "topologyKeys": None}]},
        },
    )
    await kube.create(
        STORAGE_CLASSES,
        {
            "metadata": {"name": "fast"},
            "provisioner": DRIVER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True,
        },
    )


def claim(name: str) -> JsonDict:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"volume.kubernetes.io/storage-provisioner": DRIVER},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "fast",
        },
    }


async def bind(kube: FakeKube, name: str) -> JsonDict:
    """What the PV controller does once the provisioner created the PV."""

    def pv_of() -> JsonDict | None:
        for pv in kube.objects(PERSISTENT_VOLUMES):
            if (pv["spec"].get("claimRef") or {}).get("name") == name:
                return pv
        return None

    pv: JsonDict = await poll(pv_of, what=f"the PV of {name}")
    await kube.patch(
        PERSISTENT_VOLUME_CLAIMS, name, {"spec": {"volumeName": pv["metadata"]["name"]}}, NS
    )
    status = {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}
    await kube.patch(PERSISTENT_VOLUME_CLAIMS, name, status, NS, subresource="status")
    await kube.patch(
        PERSISTENT_VOLUMES, pv["metadata"]["name"], {"status": {"phase": "Bound"}},
        subresource="status",
    )  # fmt: skip
    return pv


async def test_three_roles_share_one_connection_and_one_list_watch_per_resource(
    tmp_path: Path,
) -> None:
    kube = FakeKube()
    await objects(kube)
    async with run_driver(tmp_path, **DRIVER_OPTIONS) as drv:
        roles = mains(drv.endpoint, kube)
        bundle = ControllerBundle(roles)
        stop = asyncio.Event()
        task = asyncio.create_task(
            supervise(
                {n: functools.partial(in_bundle, bundle, n, m) for n, m in roles.items()}, stop
            )
        )
        try:
            # provision
            await kube.create(PERSISTENT_VOLUME_CLAIMS, claim("c1"), NS)
            pv = await bind(kube, "c1")
            handle = pv["spec"]["csi"]["volumeHandle"]
            # attach
            await kube.create(
                VOLUME_ATTACHMENTS,
                {
                    "metadata": {"name": "va1"},
                    "spec": {
                        "attacher": DRIVER,
                        "nodeName": NODE,
                        "source": {"persistentVolumeName": pv["metadata"]["name"]},
                    },
                },
            )

            def attached() -> bool:
                va = kube.peek(VOLUME_ATTACHMENTS, "va1")
                return bool(va and (va.get("status") or {}).get("attached"))

            await poll(attached, what="the VolumeAttachment attached")
            assert NODE in drv.state.data.volumes[handle].attached
            # expand
            await kube.patch(
                PERSISTENT_VOLUME_CLAIMS,
                "c1",
                {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
                NS,
            )
            await poll(
                lambda: drv.state.data.volumes[handle].capacity_bytes == 2 * GIB,
                what="the volume expanded",
            )
            assert not task.done()
        finally:
            stop.set()
            code = await asyncio.wait_for(task, 30)
            await bundle.close()
        assert code == 0

        # one driver connection, the driver's name and capabilities read once
        assert bundle.connections == 1
        assert [c.method for c in drv.calls].count("GetPluginInfo") == 1
        assert [c.method for c in drv.calls].count("ControllerGetCapabilities") == 1
        # one list and one watch per resource two roles watch (PVs: all three; PVCs: two)
        for resource in (PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, VOLUME_ATTACHMENTS):
            lists = kube.actions_of("list", resource)
            assert len(lists) == 1, (resource.plural, lists)
            assert len(kube.actions_of("watch", resource)) == 1, resource.plural
        # every role held its own Lease, with the names the roles use alone
        leases = {lease["metadata"]["name"] for lease in kube.objects(LEASES)}
        slug = DRIVER.replace(".", "-")
        assert {slug, f"external-attacher-leader-{slug}", f"external-resizer-{slug}"} <= leases


async def test_a_role_that_fails_at_start_stops_the_bundle(tmp_path: Path) -> None:
    kube = FakeKube()
    await objects(kube)
    async with run_driver(tmp_path, **DRIVER_OPTIONS) as drv:
        roles = mains(drv.endpoint, kube)
        # the resizer dials a socket nobody serves: it gives up, and the bundle with it
        missing = str(tmp_path / "nobody.sock")
        rsz = ResizerConfig(timeout=0.5, resync=0.0, workers=1, retry_start=0.02, retry_max=0.2)
        roles["resizer"] = lambda stop: run_resizer(
            rsz,
            parse_gates((), resizer_names.GATES),
            CsiOptions(missing, 0.5),
            HttpOptions(),
            kube_options(),
            stop,
            port=kube,
        )
        bundle = ControllerBundle(roles)
        stop = asyncio.Event()
        original = bundle.connection

        async def quick(address: str, timeout: float | None, *, log_length: int) -> Any:
            return await original(address, 0.5 if address == missing else timeout,
                                  log_length=log_length)  # fmt: skip

        bundle.connection = quick  # type: ignore[method-assign]
        code = await asyncio.wait_for(
            supervise(
                {n: functools.partial(in_bundle, bundle, n, m) for n, m in roles.items()},
                stop,
                grace=10,
            ),
            30,
        )
        await bundle.close()
        assert code == 1
        assert bundle.connections == 2
