"""cluster-driver-registrar against a fake CSI driver and the in-memory kube fake."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import CSI_DRIVERS, EVENTS, ApiError, JsonDict
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.registrar.cluster import ClusterConfig, run_cluster_registrar
from csi_sidecars.registrar.cluster_sync import ClusterRegistrar, Outcome
from tests.support.fake_driver import FakeDriver, Identity
from tests.support.net import free_port, http_get
from tests.support.poll import poll

NAME = "fake.csi.example.com"
PUBLISH = csi_pb2.ControllerServiceCapability.RPC.PUBLISH_UNPUBLISH_VOLUME


class Events:
    """A list-backed event sink."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, str]] = []

    def __call__(self, obj: JsonDict, event_type: str, reason: str, message: str) -> None:
        self.items.append((obj["metadata"]["name"], event_type, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.items]


def desired(**opts: Any) -> JsonDict:
    info = cs.DriverInfo(NAME, controller_service=True, publish_unpublish=True)
    return cs.build_csidriver(info, cs.SpecOptions(**opts))


async def precreate(kube: FakeKube, **spec: Any) -> JsonDict:
    body = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": NAME}}
    return await kube.create(CSI_DRIVERS, {**body, "spec": spec})


def patches(kube: FakeKube) -> int:
    return len(kube.actions_of("patch", CSI_DRIVERS)) + len(kube.actions_of("create", CSI_DRIVERS))


# ---- the executor ---------------------------------------------------------------------------


async def test_creates_the_missing_object() -> None:
    kube, events = FakeKube(), Events()
    reg = ClusterRegistrar(kube, desired(pod_info_on_mount=True), emit=events)
    assert await reg.sync_once() is Outcome.CREATED
    obj = kube.peek(CSI_DRIVERS, NAME)
    assert obj is not None
    assert obj["spec"] == {"attachRequired": True, "podInfoOnMount": True}
    assert obj["metadata"]["labels"][cs.MANAGED_BY_LABEL] == cs.MANAGED_BY
    assert reg.synced_uid == obj["metadata"]["uid"]
    assert events.reasons() == [cs.REASON_CREATED]
    # Nothing more to do next time.
    assert await reg.sync_once() is Outcome.IN_SYNC
    assert patches(kube) == 1
    assert events.reasons() == [cs.REASON_CREATED]


async def test_corrects_drift_of_a_mutable_field() -> None:
    kube, events = FakeKube(), Events()
    reg = ClusterRegistrar(
        kube, desired(pod_info_on_mount=True, fs_group_policy="File"), emit=events
    )
    await reg.sync_once()
    await kube.patch(CSI_DRIVERS, NAME, {"spec": {"podInfoOnMount": False}})
    assert await reg.sync_once() is Outcome.CORRECTED
    obj = kube.peek(CSI_DRIVERS, NAME)
    assert obj is not None and obj["spec"]["podInfoOnMount"] is True
    assert events.reasons() == [cs.REASON_CREATED, cs.REASON_DRIFT]
    assert "spec.podInfoOnMount (have false, want true)" in events.items[-1][3]


async def test_takes_over_a_matching_object_without_rewriting_it() -> None:
    kube, events = FakeKube(), Events()
    await precreate(kube, attachRequired=True, podInfoOnMount=False)
    await kube.patch(
        CSI_DRIVERS, NAME, {"metadata": {"labels": {cs.MANAGED_BY_LABEL: cs.MANAGED_BY}}}
    )
    reg = ClusterRegistrar(kube, desired(), emit=events)
    assert await reg.sync_once() is Outcome.IN_SYNC
    assert patches(kube) == 2  # the two set-up calls only
    assert events.items == []


async def test_immutable_conflict_is_refused_and_reported_once() -> None:
    kube, events = FakeKube(), Events()
    await precreate(kube, attachRequired=False)
    reg = ClusterRegistrar(kube, desired(pod_info_on_mount=True), emit=events)
    before = patches(kube)
    for _ in range(3):
        assert await reg.sync_once() is Outcome.CONFLICT
    assert patches(kube) == before
    assert kube.actions_of("delete", CSI_DRIVERS) == []
    assert len(events.items) == 1
    name, etype, reason, message = events.items[0]
    assert (name, etype, reason) == (NAME, "Warning", cs.REASON_CONFLICT)
    assert "spec.attachRequired (have false, want true)" in message
    obj = kube.peek(CSI_DRIVERS, NAME)
    assert obj is not None and obj["spec"] == {"attachRequired": False}
    assert reg.synced_uid is None


async def test_conflict_is_reported_again_after_it_was_resolved_and_came_back() -> None:
    kube, events = FakeKube(), Events()
    await precreate(kube, attachRequired=False)
    reg = ClusterRegistrar(kube, desired(), emit=events)
    assert await reg.sync_once() is Outcome.CONFLICT
    await kube.delete(CSI_DRIVERS, NAME)
    assert await reg.sync_once() is Outcome.CREATED
    await kube.delete(CSI_DRIVERS, NAME)
    await precreate(kube, attachRequired=False)
    assert await reg.sync_once() is Outcome.CONFLICT
    assert events.reasons() == [cs.REASON_CONFLICT, cs.REASON_CREATED, cs.REASON_CONFLICT]


async def test_allow_recreate_deletes_and_recreates() -> None:
    kube, events = FakeKube(), Events()
    old = await precreate(kube, attachRequired=False, volumeLifecycleModes=["Ephemeral"])
    reg = ClusterRegistrar(kube, desired(), allow_recreate=True, emit=events)
    assert await reg.sync_once() is Outcome.RECREATED
    obj = kube.peek(CSI_DRIVERS, NAME)
    assert obj is not None
    assert obj["metadata"]["uid"] != old["metadata"]["uid"]
    assert obj["spec"] == {"attachRequired": True, "podInfoOnMount": False}
    assert events.reasons() == [cs.REASON_RECREATED]
    assert "spec.attachRequired" in events.items[0][3]
    assert "spec.volumeLifecycleModes" not in events.items[0][3]  # not managed


async def test_rejected_apply_is_reported_once_not_looped() -> None:
    kube, events = FakeKube(), Events()
    invalid = ApiError(422, "Invalid", "spec.podInfoOnMount: field is immutable")
    kube.inject("patch", invalid, resource=CSI_DRIVERS, times=2)
    await precreate(kube, attachRequired=True)
    reg = ClusterRegistrar(kube, desired(pod_info_on_mount=True), emit=events)
    assert await reg.sync_once() is Outcome.INVALID
    assert await reg.sync_once() is Outcome.INVALID
    assert events.reasons() == [cs.REASON_APPLY_FAILED]
    assert "field is immutable" in events.items[0][3]
    assert await reg.sync_once() is Outcome.CORRECTED


async def test_transient_errors_propagate_from_sync_once() -> None:
    kube = FakeKube()
    kube.inject("get", ApiError(500, "InternalError", "etcd is sad"), resource=CSI_DRIVERS)
    reg = ClusterRegistrar(kube, desired())
    with pytest.raises(ApiError):
        await reg.sync_once()


class DroppingKube(FakeKube):
    """An API server whose feature gate for seLinuxMount is off: it drops the field."""

    async def patch(self, *args: Any, **kwargs: Any) -> JsonDict:
        body = args[2]
        if isinstance(body, dict):
            body.get("spec", {}).pop("seLinuxMount", None)
        return await super().patch(*args, **kwargs)


async def test_fields_the_server_drops_are_warned_once_and_not_reapplied() -> None:
    kube, events = DroppingKube(), Events()
    reg = ClusterRegistrar(kube, desired(selinux_mount=True), emit=events)
    assert await reg.sync_once() is Outcome.CREATED
    assert reg.ignored == {"seLinuxMount"}
    assert await reg.sync_once() is Outcome.IN_SYNC
    assert events.reasons() == [cs.REASON_CREATED]


async def test_run_retries_transient_errors_then_waits_the_interval() -> None:
    kube = FakeKube()
    kube.inject("get", ApiError(503, "ServiceUnavailable", "later"), resource=CSI_DRIVERS, times=2)
    reg = ClusterRegistrar(kube, desired())
    task = asyncio.create_task(reg.run(interval=3600, max_backoff=0.01))
    try:
        await poll(lambda: kube.peek(CSI_DRIVERS, NAME) is not None, what="CSIDriver created")
        gets = len(kube.actions_of("get", CSI_DRIVERS))
        assert gets == 3
        await asyncio.sleep(0.05)
        assert len(kube.actions_of("get", CSI_DRIVERS)) == gets  # settled: waits the hour
    finally:
        task.cancel()


async def test_delete_uses_the_uid_it_synced() -> None:
    kube = FakeKube()
    reg = ClusterRegistrar(kube, desired())
    assert await reg.delete() is False  # never synced: nothing to delete
    await reg.sync_once()
    await kube.delete(CSI_DRIVERS, NAME)
    await precreate(kube, attachRequired=True)  # someone else's object now
    assert await reg.delete() is False
    assert kube.peek(CSI_DRIVERS, NAME) is not None
    await reg.sync_once()  # adopts it (labels added)
    assert await reg.delete() is True
    assert kube.peek(CSI_DRIVERS, NAME) is None


# ---- the role's main, with a fake driver ---------------------------------------------------


@pytest.fixture
def socket_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="cdr-")
    try:
        yield f"{d}/csi.sock"
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def driver(socket_path: str) -> AsyncIterator[FakeDriver]:
    drv = FakeDriver(socket_path)
    drv.state.controller_caps = [PUBLISH]
    await drv.start()
    try:
        yield drv
    finally:
        await drv.stop()


class NodeOnlyIdentity(Identity):
    """A driver with no Controller service (it advertises no CONTROLLER_SERVICE)."""

    async def GetPluginCapabilities(self, request: Any, context: Any) -> Any:
        return csi_pb2.GetPluginCapabilitiesResponse()


class EmptyNameIdentity(Identity):
    async def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return csi_pb2.GetPluginInfoResponse(name="")


async def _serve_identity(socket_path: str, servicer: Identity) -> grpc.aio.Server:
    server = grpc.aio.server()
    csi_pb2_grpc.add_IdentityServicer_to_server(servicer, server)
    server.add_insecure_port("unix://" + socket_path)
    await server.start()
    return server


async def _start(config: ClusterConfig, kube: FakeKube) -> tuple[asyncio.Event, asyncio.Task[int]]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_cluster_registrar(config, KubeOptions(), stop, port=kube))
    return stop, task


def _events(kube: FakeKube, reason: str) -> list[JsonDict]:
    return [e for e in kube.objects(EVENTS) if e["reason"] == reason]


async def test_role_creates_the_object_records_an_event_and_keeps_it_on_stop(
    driver: FakeDriver, socket_path: str
) -> None:
    kube = FakeKube()
    config = ClusterConfig(
        csi_address=socket_path,
        spec=cs.SpecOptions(pod_info_on_mount=True, fs_group_policy="File"),
        reapply_interval=0.05,
    )
    stop, task = await _start(config, kube)
    try:
        await poll(lambda: bool(_events(kube, cs.REASON_CREATED)), what="creation event")
        obj = kube.peek(CSI_DRIVERS, NAME)
        assert obj is not None
        assert obj["spec"] == {
            "attachRequired": True,
            "podInfoOnMount": True,
            "fsGroupPolicy": "File",
        }
        event = _events(kube, cs.REASON_CREATED)[0]
        assert event["metadata"]["namespace"] == "default"
        assert event["involvedObject"]["kind"] == "CSIDriver"
        assert event["involvedObject"]["uid"] == obj["metadata"]["uid"]
        # Drift behind its back is corrected within the (short) interval.
        await kube.patch(CSI_DRIVERS, NAME, {"spec": {"fsGroupPolicy": "None"}})

        def corrected() -> bool:
            now = kube.peek(CSI_DRIVERS, NAME)
            return now is not None and now["spec"]["fsGroupPolicy"] == "File"

        await poll(corrected, what="drift corrected")
        await poll(lambda: bool(_events(kube, cs.REASON_DRIFT)), what="drift event")
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0
    assert kube.peek(CSI_DRIVERS, NAME) is not None
    assert kube.actions_of("delete", CSI_DRIVERS) == []


async def test_role_deletes_on_shutdown_only_when_asked(
    driver: FakeDriver, socket_path: str
) -> None:
    kube = FakeKube()
    config = ClusterConfig(csi_address=socket_path, delete_on_shutdown=True)
    stop, task = await _start(config, kube)
    await poll(lambda: kube.peek(CSI_DRIVERS, NAME) is not None, what="CSIDriver")
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0
    assert kube.peek(CSI_DRIVERS, NAME) is None


async def test_role_reports_an_immutable_conflict_and_keeps_running(
    driver: FakeDriver, socket_path: str
) -> None:
    kube = FakeKube()
    await precreate(kube, attachRequired=False)
    config = ClusterConfig(csi_address=socket_path, reapply_interval=0.02, delete_on_shutdown=True)
    stop, task = await _start(config, kube)
    try:
        await poll(lambda: bool(_events(kube, cs.REASON_CONFLICT)), what="conflict event")
        # Many intervals later: still one event with count 1, no writes, still running.
        await poll(lambda: len(kube.actions_of("get", CSI_DRIVERS)) >= 5, what="re-checks")
        assert not task.done()
        [event] = _events(kube, cs.REASON_CONFLICT)
        assert event["count"] == 1 and event["type"] == "Warning"
        assert "spec.attachRequired (have false, want true)" in event["message"]
        assert kube.actions_of("patch", CSI_DRIVERS) == []
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0
    # delete-on-shutdown never removes an object it refused to manage.
    assert kube.peek(CSI_DRIVERS, NAME) is not None


async def test_driver_without_controller_service_needs_no_attach(socket_path: str) -> None:
    server = await _serve_identity(socket_path, NodeOnlyIdentity(FakeDriver(socket_path).state))
    kube = FakeKube()
    stop, task = await _start(ClusterConfig(csi_address=socket_path), kube)
    try:
        await poll(lambda: kube.peek(CSI_DRIVERS, NAME) is not None, what="CSIDriver")
        obj = kube.peek(CSI_DRIVERS, NAME)
        assert obj is not None and obj["spec"]["attachRequired"] is False
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0
        await server.stop(None)


async def test_driver_without_publish_capability_needs_no_attach(
    driver: FakeDriver, socket_path: str
) -> None:
    driver.state.controller_caps = []
    kube = FakeKube()
    stop, task = await _start(ClusterConfig(csi_address=socket_path), kube)
    try:
        await poll(lambda: kube.peek(CSI_DRIVERS, NAME) is not None, what="CSIDriver")
        obj = kube.peek(CSI_DRIVERS, NAME)
        assert obj is not None and obj["spec"]["attachRequired"] is False
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_empty_driver_name_exits_1(socket_path: str) -> None:
    server = await _serve_identity(socket_path, EmptyNameIdentity(FakeDriver(socket_path).state))
    try:
        kube = FakeKube()
        _, task = await _start(ClusterConfig(csi_address=socket_path), kube)
        assert await asyncio.wait_for(task, 10) == 1
        assert kube.actions == []
    finally:
        await server.stop(None)


async def test_unreachable_driver_exits_1(socket_path: str) -> None:
    config = ClusterConfig(csi_address=socket_path, connect_timeout=0.3)
    _, task = await _start(config, FakeKube())
    assert await asyncio.wait_for(task, 10) == 1


async def test_stop_while_waiting_for_the_driver_exits_0(socket_path: str) -> None:
    stop, task = await _start(ClusterConfig(csi_address=socket_path), FakeKube())
    await asyncio.sleep(0.1)
    assert not task.done()
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0


async def test_http_endpoint_serves_metrics_and_healthz(
    driver: FakeDriver, socket_path: str
) -> None:
    port = free_port()
    config = ClusterConfig(csi_address=socket_path, http_endpoint=f"127.0.0.1:{port}")
    kube = FakeKube()
    stop, task = await _start(config, kube)
    try:
        await poll(lambda: kube.peek(CSI_DRIVERS, NAME) is not None, what="CSIDriver")
        health = await http_get(f"http://127.0.0.1:{port}/healthz")
        assert health is not None and health[0] == 200
        assert "created" in health[1] or "in-sync" in health[1]
        metrics = await http_get(f"http://127.0.0.1:{port}/metrics")
        assert metrics is not None and metrics[0] == 200
        assert "csi_sidecar_operations_seconds_count{" in metrics[1]
        assert 'method_name="/csi.v1.Identity/GetPluginInfo"' in metrics[1]
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_bad_kubeconfig_exits_1_before_waiting_for_the_driver(
    socket_path: str, tmp_path: Any
) -> None:
    # No driver listens: the role must fail on the kubeconfig, not wait 30 s for the socket.
    kube = KubeOptions(kubeconfig=str(tmp_path / "missing.kubeconfig"))
    code = await asyncio.wait_for(
        run_cluster_registrar(ClusterConfig(csi_address=socket_path), kube, asyncio.Event()), 10
    )
    assert code == 1
