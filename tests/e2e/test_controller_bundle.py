"""The controller bundle on the testbed: ``csi-sidecars run --roles provisioner,attacher,resizer,
snapshotter,livenessprobe`` as one process through the CLI, each role with its own RBAC identity
(prefixed ``--<role>.kubeconfig``), its own Lease and its own HTTP endpoint.

One claim goes through the whole mixed workload in that one process: provisioned, attached,
expanded, snapshotted, then everything deleted. The API server's own request counters show
one LIST per resource the roles share (PersistentVolumes: three roles' informers would list
them separately; claims, VolumeAttachments and CSINodes: two).
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from tests.e2e.provisioner_support import (
    ProvDriver,
    claims_path,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
)
from tests.e2e.snapshots_support import (
    VSCLASSES,
    snapshot_class,
    snapshots_path,
    volume_snapshot,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ROLES = ("provisioner", "attacher", "resizer", "snapshotter")
IDENTITY = {role: f"csi-{role}" for role in ROLES}
VAS = "/apis/storage.k8s.io/v1/volumeattachments"
PVS = "/api/v1/persistentvolumes"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
#: ``resource`` label values of the API server's request counter for what the roles share
SHARED = ("persistentvolumes", "persistentvolumeclaims", "volumeattachments", "csinodes")


async def list_counts(api: RawApi) -> dict[str, float]:
    """LIST requests the API server has answered so far, per resource (all clients)."""
    status, text = await api.call("GET", "/metrics")
    assert status == 200
    counts: dict[str, float] = dict.fromkeys(SHARED, 0.0)
    for line in str(text).splitlines():
        if not line.startswith("apiserver_request_total{") or 'verb="LIST"' not in line:
            continue
        found = re.search(r'resource="([^"]+)"', line)
        if found and found.group(1) in counts and 'subresource=""' in line:
            counts[found.group(1)] += float(line.rsplit(" ", 1)[1])
    return counts


async def http_get(address: str, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://{address}{path}") as resp:
        return resp.status, await resp.text()


@pytest_asyncio.fixture(loop_scope="session")
async def drv(control_plane: ControlPlane) -> AsyncIterator[ProvDriver]:
    driver = await start_driver(
        control_plane, "--enable-attach", "--disable-node-expansion", prefix="bundle"
    )
    try:
        yield driver
    finally:
        await stop_driver(control_plane, driver)


async def test_one_process_provisions_attaches_expands_and_snapshots(
    control_plane: ControlPlane, api: RawApi, namespace: str, drv: ProvDriver
) -> None:
    cp = control_plane
    storage_class = await make_class(api, drv.name, allowVolumeExpansion=True)
    snap_class = await snapshot_class(api, drv.name)
    controller = await cp.start_sidecar("snapshot-controller", "--retry-interval-max=2s")

    async def controller_synced() -> bool:
        assert controller.running, controller.log_tail(40)
        return "Caches synced" in controller.log_path.read_text()

    # its lists are done before the count starts
    await poll_until(
        controller_synced, 60, "the snapshot-controller synced", fatal=(AssertionError,)
    )
    ports = {role: f"127.0.0.1:{free_port()}" for role in (*ROLES, "livenessprobe")}
    before = await list_counts(api)
    argv = [
        sys.executable,
        "-m",
        "csi_sidecars",
        "run",
        f"--roles={','.join(ROLES)},livenessprobe",
        f"--csi-address={drv.socket}",
        "--leader-election",
        f"--leader-election-namespace={namespace}",
        "--retry-interval-max=2s",
        "--timeout=10s",
        "-v=4",
        *(f"--{role}.kubeconfig={cp.kubeconfig(IDENTITY[role])}" for role in ROLES),
        *(f"--{role}.http-endpoint={ports[role]}" for role in ROLES),
        f"--livenessprobe.http-endpoint={ports['livenessprobe']}",
    ]
    bundle: ManagedProcess = await cp.start_process("bundle", argv)
    vs_path = f"{snapshots_path(namespace)}/snap"
    va_name = f"va-{uuid.uuid4().hex[:8]}"
    try:
        # provision
        await api.create(claims_path(namespace), objects.pvc("data", storage_class, size="1Mi"))
        pvc = await wait_bound(api, namespace, "data", timeout=90)
        pv_name = pvc["spec"]["volumeName"]
        # attach
        node = cp.node_names[0]
        await api.create(
            VAS,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "VolumeAttachment",
                "metadata": {"name": va_name},
                "spec": {
                    "attacher": drv.name,
                    "nodeName": node,
                    "source": {"persistentVolumeName": pv_name},
                },
            },
        )
        await api.wait_for(
            f"{VAS}/{va_name}",
            lambda va: (va.get("status") or {}).get("attached") is True,
            timeout=60,
            what="VolumeAttachment attached",
        )
        # expand
        await api.patch(
            f"{claims_path(namespace)}/data",
            {"spec": {"resources": {"requests": {"storage": "2Mi"}}}},
        )
        await api.wait_for(
            f"{claims_path(namespace)}/data",
            lambda c: ((c.get("status") or {}).get("capacity") or {}).get("storage") == "2Mi",
            timeout=60,
            what="claim expanded to 2Mi",
        )
        # snapshot
        await api.create(
            snapshots_path(namespace), volume_snapshot("snap", claim="data", cls=snap_class)
        )
        await wait_ready(api, namespace, "snap", timeout=60)
        assert bundle.running, bundle.log_tail(60)

        # LISTs answered by the API server so far (checked after the clean-up below)
        after = await list_counts(api)

        # leader election per role, under the Lease names the roles use alone
        slug = drv.name.replace(".", "-")
        leases = (await api.get(LEASES.format(ns=namespace)))["items"]
        held = {
            lease["metadata"]["name"]
            for lease in leases
            if (lease.get("spec") or {}).get("holderIdentity")
        }
        assert {
            slug,
            f"external-attacher-leader-{slug}",
            f"external-resizer-{slug}",
            f"external-snapshotter-leader-{slug}",
        } <= held, held

        # each role serves its own metrics and health on its own endpoint
        calls = {
            "provisioner": "CreateVolume",
            "attacher": "ControllerPublishVolume",
            "resizer": "ControllerExpandVolume",
            "snapshotter": "CreateSnapshot",
        }
        for role in calls:
            status, text = await http_get(ports[role], "/metrics")
            assert status == 200, (role, text)
            for other, other_method in calls.items():
                shown = f'method_name="/csi.v1.Controller/{other_method}"' in text
                assert shown == (other == role), (role, other_method)
            status, _ = await http_get(ports[role], "/healthz/leader-election")
            assert status == 200, role

        # the livenessprobe next to them probes the driver
        status, body = await http_get(ports["livenessprobe"], "/healthz")
        assert (status, body) == (200, "ok"), body

        # delete everything: detach, snapshot deleted, volume deleted
        await api.delete(vs_path)
        await api.wait_deleted(vs_path, 60)
        await api.delete(f"{VAS}/{va_name}")
        await api.wait_deleted(f"{VAS}/{va_name}", 60)
        await api.delete(f"{claims_path(namespace)}/data")
        await api.wait_deleted(f"{PVS}/{pv_name}", 90)

        async def no_volumes() -> bool:
            return not drv.volumes()

        await poll_until(no_volumes, 30, "the driver's volume deleted")
        assert bundle.running, bundle.log_tail(60)

        # One LIST per shared resource: the bundle's informers share one list+watch (one
        # informer per role would list PVs three times, the others twice). The bundle's log
        # shows its first sync once per resource; the API server counts every client's LISTs,
        # so a retry after a failed list or watch (logged by the bundle or by the
        # snapshot-controller, both with the resource) is allowed for.
        log = bundle.log_path.read_text()
        others = controller.log_path.read_text()
        listed = {res: after[res] - before[res] for res in SHARED}
        for resource in SHARED:
            synced = re.findall(rf'"Informer synced" resource="{resource}"', log)
            assert len(synced) == 1, (resource, synced)
            retried = sum(
                len(re.findall(rf'"{what}" resource="{resource}"', text))
                for what in ("Watch expired, re-listing", "List/watch failed")
                for text in (log, others)
            )
            assert 1 <= listed[resource] <= 1 + retried, (listed, resource, retried)
    except BaseException:
        print(f"----- bundle -----\n{bundle.log_tail(120)}")
        raise
    finally:
        await bundle.stop(timeout=15)
        await controller.stop(timeout=10)
        await api.delete(f"{VSCLASSES}/{snap_class}")
        await api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{storage_class}")
    assert bundle.returncode == 0, bundle.log_tail(40)
    assert "Role " not in "".join(
        line for line in bundle.log_path.read_text().splitlines() if line.startswith("E")
    )
