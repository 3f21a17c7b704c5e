"""cluster-driver-registrar on the testbed: our role as a subprocess through the CLI, with its own
RBAC identity, against the playground (hostpath-like) driver and a real API server.

Each test runs its own driver under a unique name, so the CSIDriver it checks is not the one the
testbed creates for the shared driver.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane, Driver
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.registrar.cluster_sync import FIELD_MANAGER

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CSIDRIVERS = "/apis/storage.k8s.io/v1/csidrivers"
EVENTS = "/api/v1/namespaces/default/events"
ROLE = "cluster-driver-registrar"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest_asyncio.fixture(loop_scope="session")
async def own_driver(control_plane: ControlPlane, api: RawApi) -> AsyncIterator[Driver]:
    """A playground driver (with attach) under a unique name, on a short socket path."""
    name = f"cdr-{uuid.uuid4().hex[:6]}.csi.example.com"
    base = Path(tempfile.mkdtemp(prefix="cdr-"))
    sock = base / "csi.sock"
    (base / "state").mkdir()
    proc = await control_plane.start_process(
        f"driver-{name}",
        [
            sys.executable,
            "-m",
            "csi_sidecars.playground.driver",
            f"--endpoint=unix://{sock}",
            f"--nodeid={control_plane.node_names[0]}",
            f"--drivername={name}",
            f"--statedir={base / 'state'}",
            "--enable-attach",
        ],
    )

    async def listening() -> bool:
        assert proc.running, proc.log_tail()
        _, writer = await asyncio.open_unix_connection(str(sock))
        writer.close()
        return True

    await poll_until(listening, 30, "the driver socket", fatal=(AssertionError,))
    try:
        yield Driver(control_plane.node_names[0], name, sock, base / "state", proc)
    finally:
        await proc.stop()
        await api.delete(f"{CSIDRIVERS}/{name}")
        shutil.rmtree(base, ignore_errors=True)


async def _events(api: RawApi, name: str, reason: str) -> list[dict[str, Any]]:
    listed = await api.get(EVENTS, fieldSelector=f"involvedObject.name={name},reason={reason}")
    return list(listed["items"])


async def _wait_event(api: RawApi, name: str, reason: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = await _events(api, name, reason)
        return items[0] if items else None

    return await poll_until(found, 30, f"a {reason} event for {name}")


def _log_count(proc: ManagedProcess, text: str) -> int:
    return proc.log_path.read_text(errors="replace").count(text)


async def test_creates_corrects_drift_and_keeps_the_object_on_sigterm(
    api: RawApi, own_driver: Driver, sidecar: Any
) -> None:
    path = f"{CSIDRIVERS}/{own_driver.name}"
    proc = await sidecar(
        ROLE,
        "--pod-info-mount",
        "--fs-group-policy=File",
        "--volume-lifecycle-modes=Persistent,Ephemeral",
        "--reapply-interval=1s",
        driver=own_driver,
    )
    obj = await api.wait_for(path, lambda o: True, timeout=60, what="the CSIDriver")
    spec = obj["spec"]
    assert spec["attachRequired"] is True  # the driver advertises PUBLISH_UNPUBLISH_VOLUME
    assert spec["podInfoOnMount"] is True
    assert spec["fsGroupPolicy"] == "File"
    assert sorted(spec["volumeLifecycleModes"]) == ["Ephemeral", "Persistent"]
    assert obj["metadata"]["labels"][cs.MANAGED_BY_LABEL] == cs.MANAGED_BY
    managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
    assert (FIELD_MANAGER, "Apply") in managers
    created = await _wait_event(api, own_driver.name, cs.REASON_CREATED)
    assert created["involvedObject"]["uid"] == obj["metadata"]["uid"]

    # Drift behind the registrar's back (a mutable field) is put back.
    await api.patch(path, {"spec": {"podInfoOnMount": False, "fsGroupPolicy": "None"}})
    fixed = await api.wait_for(
        path,
        lambda o: o["spec"]["podInfoOnMount"] is True and o["spec"]["fsGroupPolicy"] == "File",
        timeout=30,
        what="drift to be corrected",
    )
    assert fixed["metadata"]["uid"] == obj["metadata"]["uid"]
    drift = await _wait_event(api, own_driver.name, cs.REASON_DRIFT)
    assert "spec.podInfoOnMount (have false, want true)" in drift["message"]

    # SIGTERM: a clean exit, and the object stays (no --delete-on-shutdown).
    proc.signal(signal.SIGTERM)
    assert await proc.wait(timeout=15) == 0
    assert (await api.get(path))["metadata"]["uid"] == obj["metadata"]["uid"]


async def test_immutable_conflict_is_reported_once_and_not_looped_on(
    api: RawApi, own_driver: Driver, sidecar: Any
) -> None:
    path = f"{CSIDRIVERS}/{own_driver.name}"
    before = await api.create(
        CSIDRIVERS,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": own_driver.name},
            "spec": {"attachRequired": False},
        },
    )
    proc = await sidecar(ROLE, "--reapply-interval=500ms", "--pod-info-mount", driver=own_driver)
    event = await _wait_event(api, own_driver.name, cs.REASON_CONFLICT)
    assert event["type"] == "Warning"
    assert "spec.attachRequired (have false, want true)" in event["message"]
    assert "--allow-recreate" in event["message"]

    # Several more checks happen; none writes the object or adds events, and the role runs on.
    async def rechecked() -> bool:
        return _log_count(proc, "CSIDriver problem persists") >= 3

    await poll_until(rechecked, 30, "the registrar to re-check the conflict")
    assert proc.running
    after = await api.get(path)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["podInfoOnMount"] is False
    events = await _events(api, own_driver.name, cs.REASON_CONFLICT)
    assert [e.get("count", 1) for e in events] == [1]
    assert _log_count(proc, cs.REASON_CONFLICT) == 1

    # With --allow-recreate it deletes and re-creates the object with the right value.
    await proc.stop()
    await sidecar(ROLE, "--allow-recreate", "--reapply-interval=1s", driver=own_driver)
    fixed = await api.wait_for(
        path,
        lambda o: o["metadata"]["uid"] != before["metadata"]["uid"],
        timeout=30,
        what="the CSIDriver to be re-created",
    )
    assert fixed["spec"]["attachRequired"] is True
    await _wait_event(api, own_driver.name, cs.REASON_RECREATED)


async def test_delete_on_shutdown_removes_the_object(
    api: RawApi, own_driver: Driver, sidecar: Any
) -> None:
    path = f"{CSIDRIVERS}/{own_driver.name}"
    proc = await sidecar(ROLE, "--delete-on-shutdown", driver=own_driver)
    await api.wait_for(path, lambda o: True, timeout=60, what="the CSIDriver")
    proc.signal(signal.SIGTERM)
    assert await proc.wait(timeout=15) == 0
    assert await api.get_or_none(path) is None


async def _http_get(url: str) -> tuple[int, str] | None:
    """GET ``url``: (status, body), or None while nothing listens there."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(url) as resp,
        ):
            return resp.status, await resp.text()
    except aiohttp.ClientConnectionError:
        return None


async def test_leader_election_with_http_endpoint(
    api: RawApi, own_driver: Driver, sidecar: Any, namespace: str
) -> None:
    path = f"{CSIDRIVERS}/{own_driver.name}"
    lock = KubeOptions(leader_election_namespace=namespace).leader_election_config(
        f"{ROLE}-leader-{own_driver.name}"
    )
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lock.lock_name}"
    base = f"http://127.0.0.1:{free_port()}"
    proc = await sidecar(
        ROLE,
        "--leader-election",
        f"--leader-election-namespace={namespace}",
        f"--http-endpoint={base.removeprefix('http://')}",
        "--reapply-interval=1s",
        driver=own_driver,
    )

    async def served(url: str) -> tuple[int, str] | None:
        assert proc.running, proc.log_tail()
        return await _http_get(url)

    obj = await api.wait_for(path, lambda o: True, timeout=60, what="the CSIDriver")
    assert obj["spec"]["attachRequired"] is True
    held = await api.wait_for(
        lease, lambda o: bool(o["spec"].get("holderIdentity")), timeout=30, what="the Lease"
    )
    health = await poll_until(lambda: served(f"{base}/healthz"), 30, "/healthz")
    assert health[0] == 200 and health[1].startswith("ok (")
    election = await poll_until(
        lambda: served(f"{base}/healthz/leader-election"), 30, "/healthz/leader-election"
    )
    assert election == (200, "ok")
    metrics = await poll_until(lambda: served(f"{base}/metrics"), 30, "/metrics")
    assert metrics[0] == 200
    assert 'method_name="/csi.v1.Identity/GetPluginInfo"' in metrics[1]

    proc.signal(signal.SIGTERM)
    assert await proc.wait(timeout=15) == 0
    # The Lease was released on stop (--leader-election-release-on-stop defaults to true) and
    # the CSIDriver stays (no --delete-on-shutdown).
    released = await api.get(lease)
    assert not released["spec"].get("holderIdentity")
    assert released["metadata"]["uid"] == held["metadata"]["uid"]
    assert (await api.get(path))["metadata"]["uid"] == obj["metadata"]["uid"]
