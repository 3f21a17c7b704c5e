"""The Kubernetes layer against a real API server: watch resilience, leases, QPS, patches."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.kube.client import KubeClient
from csi_sidecars.kube.config import load_client_config
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.patch import add_finalizer_patch, apply, is_conflict, remove_finalizer_patch
from csi_sidecars.kube.resources import LEASES, ApiError, Resource
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
CANDIDATE = Path(__file__).with_name("lease_candidate.py")


def cm(name: str, value: str = "v") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": value},
    }


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


@pytest_asyncio.fixture(loop_scope="session")
async def client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    cfg = await load_client_config(str(control_plane.kubeconfig()))
    async with KubeClient(cfg, qps=-1, agent="e2e") as c:
        yield c


class Seen:
    """What an informer's handlers reported."""

    def __init__(self, inf: Informer) -> None:
        self.added: set[str] = set()
        self.updated: set[str] = set()
        self.deleted: set[str] = set()
        inf.add_handlers(
            on_add=lambda o: self.added.add(o["metadata"]["name"]),
            on_update=lambda old, new: (
                self.updated.add(new["metadata"]["name"])
                if old["metadata"]["resourceVersion"] != new["metadata"]["resourceVersion"]
                else None
            ),
            on_delete=lambda o: self.deleted.add(o["metadata"]["name"]),
        )


class GatedPort:
    """Wraps a port; while the gate is shut, this client is cut off from the API server."""

    def __init__(self, inner: KubeClient) -> None:
        self.inner = inner
        self.cut = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def list(self, *args: Any, **kwargs: Any) -> Any:
        if self.cut.is_set():
            raise ConnectionError("partitioned")
        return await self.inner.list(*args, **kwargs)

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if self.cut.is_set():
            raise ConnectionError("partitioned")
        stream = self.inner.watch(*args, **kwargs)
        nxt: asyncio.Future[Any] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(anext(stream))
                cut = asyncio.ensure_future(self.cut.wait())
                done, _ = await asyncio.wait({nxt, cut}, return_when=asyncio.FIRST_COMPLETED)
                cut.cancel()
                if nxt not in done:
                    raise ConnectionError("partitioned")
                try:
                    event = nxt.result()
                except StopAsyncIteration:
                    return
                yield event
        finally:
            if nxt is not None and not nxt.done():
                nxt.cancel()
                await asyncio.gather(nxt, return_exceptions=True)
            await stream.aclose()


async def test_watch_survives_api_server_restart(
    control_plane: ControlPlane, api: RawApi, client: KubeClient, namespace: str
) -> None:
    await api.create(cm_path(namespace), cm("before"))
    inf = Informer(client, CONFIGMAPS, namespace=namespace, fields=["data"])
    seen = Seen(inf)
    task = asyncio.create_task(inf.run())
    try:
        assert await inf.wait_for_sync(30)
        assert "before" in seen.added
        watches = inf.watches
        await control_plane.stop_apiserver()
        await control_plane.start_apiserver()
        names = [f"after-{i}" for i in range(5)]
        for name in names:
            await api.create(cm_path(namespace), cm(name))
        await api.patch(cm_path(namespace, "before"), {"data": {"k": "changed"}})

        async def all_seen() -> bool:
            return set(names) <= seen.added and "before" in seen.updated

        await poll_until(all_seen, 120, "informer to see the objects created after the restart")
        assert inf.watches > watches
        assert inf.store.get(f"{namespace}/before")["data"] == {"k": "changed"}  # type: ignore[index]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_forced_410_relists_and_misses_nothing(
    control_plane: ControlPlane, api: RawApi, client: KubeClient, namespace: str
) -> None:
    for name in ("keep", "change", "remove"):
        await api.create(cm_path(namespace), cm(name))
    gated = GatedPort(client)
    inf = Informer(gated, CONFIGMAPS, namespace=namespace, fields=["data"])  # type: ignore[arg-type]
    seen = Seen(inf)
    task = asyncio.create_task(inf.run())
    try:
        assert await inf.wait_for_sync(30)
        assert inf.lists == 1
        # Outage for this client: changes happen that it cannot see, and etcd is compacted
        # (with an API server restart, so the watch cache forgets the old versions too).
        gated.cut.set()
        created = [f"during-{i}" for i in range(5)]
        for name in created:
            await api.create(cm_path(namespace), cm(name))
        await api.patch(cm_path(namespace, "change"), {"data": {"k": "new"}})
        await api.delete(cm_path(namespace, "remove"))
        await control_plane.compact_etcd(restart_apiserver=True)
        gated.cut.clear()

        async def caught_up() -> bool:
            return (
                set(created) <= seen.added and "remove" in seen.deleted and "change" in seen.updated
            )

        await poll_until(caught_up, 120, "informer to catch up after 410")
        assert inf.lists >= 2  # it had to re-list: the old resourceVersion was gone
        keys = sorted(k.split("/", 1)[1] for k in inf.store.list_keys())
        assert keys == sorted(["keep", "change", *created])
        assert inf.store.get(f"{namespace}/change")["data"] == {"k": "new"}  # type: ignore[index]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_watch_gone_error_from_real_server(
    control_plane: ControlPlane, api: RawApi, client: KubeClient, namespace: str
) -> None:
    first = await api.create(cm_path(namespace), cm("a"))
    old_rv = first["metadata"]["resourceVersion"]
    await api.create(cm_path(namespace), cm("b"))
    await control_plane.compact_etcd(restart_apiserver=True)
    with pytest.raises(ApiError) as err:
        async for _ in client.watch(
            CONFIGMAPS, namespace, resource_version=old_rv, timeout_seconds=5
        ):
            pass
    assert err.value.gone


async def test_qps_limiter_holds_burst_to_rate(control_plane: ControlPlane, namespace: str) -> None:
    cfg = await load_client_config(str(control_plane.kubeconfig()))
    async with KubeClient(cfg, qps=5, burst=10) as c:
        await asyncio.sleep(0)
        start = time.monotonic()
        done: list[float] = []

        async def one() -> None:
            await c.list(CONFIGMAPS, namespace)
            done.append(time.monotonic() - start)

        await asyncio.gather(*(one() for _ in range(30)))
    done.sort()
    # 10 at once, then 5 per second: the 30th cannot finish before 4 s.
    for k in range(10, 30):
        assert done[k] >= (k - 9) / 5 - 0.05, (k, done[k])
    assert done[29] < 4.0 + 3.0
    assert done[9] < 2.0


async def test_patch_semantics_on_real_server(client: KubeClient, namespace: str) -> None:
    name = f"p-{uuid.uuid4().hex[:6]}"
    body = cm(name)
    body["metadata"]["finalizers"] = ["example.com/a"]
    obj = await client.create(CONFIGMAPS, body, namespace)
    stale = dict(obj)
    await client.patch(CONFIGMAPS, name, {"metadata": {"labels": {"x": "y"}}}, namespace)
    fresh = await client.get(CONFIGMAPS, name, namespace)
    await client.patch(
        CONFIGMAPS, name, add_finalizer_patch(fresh, "example.com/b"), namespace, patch_type="json"
    )
    # A finalizer patch built from a stale read fails its test: a conflict, not an overwrite.
    with pytest.raises(ApiError) as err:
        await client.patch(
            CONFIGMAPS,
            name,
            add_finalizer_patch(stale, "example.com/c"),
            namespace,
            patch_type="json",
        )
    assert is_conflict(err.value), (err.value.status, err.value.message)
    # Finalizers block deletion.
    await client.delete(CONFIGMAPS, name, namespace)
    pending = await client.get(CONFIGMAPS, name, namespace)
    assert pending["metadata"]["deletionTimestamp"]
    for fin in ("example.com/a", "example.com/b"):
        current = await client.get(CONFIGMAPS, name, namespace)
        await client.patch(
            CONFIGMAPS, name, remove_finalizer_patch(current, fin), namespace, patch_type="json"
        )
    with pytest.raises(ApiError) as err:
        await client.get(CONFIGMAPS, name, namespace)
    assert err.value.not_found
    # Server-side apply with a field manager.
    applied = await apply(
        client,
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "ssa"},
        },
        "csi-sidecars-e2e",
    )
    managers = [m["manager"] for m in applied["metadata"]["managedFields"]]
    assert managers == ["csi-sidecars-e2e"]
    # A stale replace conflicts.
    stale_obj = dict(applied)
    await client.patch(CONFIGMAPS, name, {"data": {"k": "other"}}, namespace)
    with pytest.raises(ApiError) as err:
        await client.replace(CONFIGMAPS, stale_obj, namespace)
    assert err.value.conflict


# -- leader election with candidate processes ----------------------------------------------

LEASE, RENEW, RETRY = 6.0, 4.0, 1.0


async def candidate(
    control_plane: ControlPlane, namespace: str, lock: str, identity: str, release: bool = True
) -> ManagedProcess:
    return await control_plane.start_process(
        f"lease-{identity}",
        [
            sys.executable,
            str(CANDIDATE),
            str(control_plane.kubeconfig()),
            namespace,
            lock,
            identity,
            str(LEASE),
            str(RENEW),
            str(RETRY),
            "true" if release else "false",
        ],
    )


async def holder(api: RawApi, namespace: str, lock: str) -> str:
    lease = await api.get_or_none(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lock}"
    )
    return "" if lease is None else str(lease["spec"].get("holderIdentity") or "")


def leading(proc: ManagedProcess) -> bool:
    return "LEADING" in proc.log_tail(200)


async def test_leader_election_one_leader_kill_and_release_handover(
    control_plane: ControlPlane, api: RawApi, namespace: str
) -> None:
    lock = "e2e-lock"
    procs = {
        name: await candidate(control_plane, namespace, lock, name) for name in ("cand-a", "cand-b")
    }
    try:

        async def elected() -> str | None:
            h = await holder(api, namespace, lock)
            return h if h in procs and leading(procs[h]) else None

        first = await poll_until(elected, 60, "a leader")
        other = "cand-b" if first == "cand-a" else "cand-a"
        # Exactly one leads, for a while.
        deadline = time.monotonic() + 3 * RETRY
        while time.monotonic() < deadline:
            assert await holder(api, namespace, lock) == first
            assert not leading(procs[other])
            await asyncio.sleep(0.5)
        # Kill the leader: no release; the other takes over once the lease runs out.
        procs[first].signal(signal.SIGKILL)
        killed = time.monotonic()

        async def took_over() -> bool:
            return await holder(api, namespace, lock) == other and leading(procs[other])

        await poll_until(took_over, 60, "handover after kill")
        after_kill = time.monotonic() - killed
        # As in client-go, expiry runs from when the standby last saw the record change (it
        # polls every jittered retry period), so the bound is the lease plus two such periods.
        assert after_kill <= LEASE + 2 * 2.2 * RETRY + 1.0, after_kill
        # Release on stop: a third candidate takes over within a retry period, not a lease.
        procs["cand-c"] = await candidate(control_plane, namespace, lock, "cand-c")
        await asyncio.sleep(2 * RETRY)  # let it start and observe the held lease
        assert await holder(api, namespace, lock) == other
        stopped = time.monotonic()
        code = await procs[other].stop(timeout=10)
        assert code == 0
        assert "STOPPED" in procs[other].log_tail(50)

        async def c_leads() -> bool:
            return await holder(api, namespace, lock) == "cand-c" and leading(procs["cand-c"])

        await poll_until(c_leads, 30, "handover after release")
        after_release = time.monotonic() - stopped
        assert after_release <= 2.2 * RETRY + 2.0, after_release
        print(f"handover after kill {after_kill:.1f}s, after release {after_release:.1f}s")
    finally:
        for proc in procs.values():
            await proc.stop(timeout=10)


async def test_losing_the_lease_exits_1(
    control_plane: ControlPlane, api: RawApi, namespace: str
) -> None:
    lock = "e2e-lost"
    proc = await candidate(control_plane, namespace, lock, "loser")
    try:

        async def leads() -> bool:
            return await holder(api, namespace, lock) == "loser" and leading(proc)

        await poll_until(leads, 60, "candidate to lead")
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lock}"
        await api.patch(path, {"spec": {"holderIdentity": "usurper", "leaseDurationSeconds": 3600}})
        code = await proc.wait(timeout=RENEW + LEASE + 10)
        assert code == 1
        assert await holder(api, namespace, lock) == "usurper"
    finally:
        await proc.stop(timeout=5)
        assert LEASES.plural == "leases"
