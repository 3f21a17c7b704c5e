"""The playground driver over a real unix socket: in-process with run_driver, and as a process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi_sidecars.csi.messages import csi_pb2 as pb
from csi_sidecars.csi.messages import csi_pb2_grpc as pbg
from csi_sidecars.playground.driver import load_state, run_driver, write_faults_file

Code = grpc.StatusCode
GIB = 1 << 30
CAP = pb.VolumeCapability(
    mount=pb.VolumeCapability.MountVolume(),
    access_mode=pb.VolumeCapability.AccessMode(
        mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    ),
)


class Client:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.identity = pbg.IdentityStub(channel)
        self.controller = pbg.ControllerStub(channel)
        self.node = pbg.NodeStub(channel)
        self.group = pbg.GroupControllerStub(channel)

    async def create(
        self, name: str = "pvc-1", size: int = GIB, timeout: float = 5, **kw: Any
    ) -> Any:
        req = pb.CreateVolumeRequest(
            name=name,
            volume_capabilities=[CAP],
            capacity_range=pb.CapacityRange(required_bytes=size),
            **kw,
        )
        return await self.controller.CreateVolume(req, timeout=timeout)


@asynccontextmanager
async def client(endpoint: str) -> AsyncIterator[Client]:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        yield Client(channel)


async def code_of(call: Any) -> Code:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


async def test_identity_and_capabilities(tmp_path: Path) -> None:
    async with run_driver(tmp_path, enable_attach=True) as drv, client(drv.endpoint) as c:
        info = await c.identity.GetPluginInfo(pb.GetPluginInfoRequest())
        assert info.name == "hostpath.csi.k8s.io"
        assert info.vendor_version
        plugin = await c.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest())
        services = {cap.service.type for cap in plugin.capabilities}
        assert pb.PluginCapability.Service.CONTROLLER_SERVICE in services
        ctrl = await c.controller.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest())
        rpcs = {cap.rpc.type for cap in ctrl.capabilities}
        assert pb.ControllerServiceCapability.RPC.PUBLISH_UNPUBLISH_VOLUME in rpcs
        assert pb.ControllerServiceCapability.RPC.LIST_VOLUMES_PUBLISHED_NODES in rpcs
        node = await c.node.NodeGetInfo(pb.NodeGetInfoRequest())
        assert node.node_id == "node-1"
        assert dict(node.accessible_topology.segments) == {"topology.hostpath.csi/node": "node-1"}
        probe = await c.identity.Probe(pb.ProbeRequest())
        assert not probe.HasField("ready")
        assert drv.methods()[:2] == ["GetPluginInfo", "GetPluginCapabilities"]


async def test_volume_flow_and_call_log(tmp_path: Path) -> None:
    async with run_driver(tmp_path, enable_attach=True) as drv, client(drv.endpoint) as c:
        vol = (await c.create(parameters={"type": "fast"})).volume
        assert vol.capacity_bytes == GIB
        assert dict(vol.volume_context) == {"type": "fast"}
        assert (await c.create(parameters={"type": "fast"})).volume.volume_id == vol.volume_id
        assert await code_of(c.create(size=2 * GIB, parameters={"type": "fast"})) == (
            Code.ALREADY_EXISTS
        )
        pub = pb.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id="node-1", volume_capability=CAP
        )
        await c.controller.ControllerPublishVolume(pub)
        missing = pb.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id="node-2", volume_capability=CAP
        )
        assert await code_of(c.controller.ControllerPublishVolume(missing)) == Code.NOT_FOUND
        listed = await c.controller.ListVolumes(pb.ListVolumesRequest())
        assert [list(e.status.published_node_ids) for e in listed.entries] == [["node-1"]]
        assert drv.state.data.volumes[vol.volume_id].attached == {"node-1": False}

        requests = drv.calls_of("ControllerPublishVolume")
        assert [r.node_id for r in requests] == ["node-1", "node-2"]
        assert [c.code for c in drv.calls if c.method == "ControllerPublishVolume"] == [
            Code.OK,
            Code.NOT_FOUND,
        ]
        await c.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id))
        await c.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol.volume_id))
        assert load_state(drv.options.statedir or "").volumes == {}


async def test_snapshot_readiness_and_group_snapshots(tmp_path: Path) -> None:
    now = [100.0]
    async with (
        run_driver(tmp_path, snapshot_ready_delay=10, clock=lambda: now[0]) as drv,
        client(drv.endpoint) as c,
    ):
        vol = (await c.create()).volume.volume_id
        req = pb.CreateSnapshotRequest(name="snap-1", source_volume_id=vol)
        snap = (await c.controller.CreateSnapshot(req)).snapshot
        assert not snap.ready_to_use
        assert snap.creation_time.seconds == 100
        now[0] = 111.0
        listed = await c.controller.ListSnapshots(
            pb.ListSnapshotsRequest(snapshot_id=snap.snapshot_id)
        )
        assert listed.entries[0].snapshot.ready_to_use

        group_req = pb.CreateVolumeGroupSnapshotRequest(name="g", source_volume_ids=[vol])
        group = (await c.group.CreateVolumeGroupSnapshot(group_req)).group_snapshot
        assert len(group.snapshots) == 1
        assert group.snapshots[0].group_snapshot_id == group.group_snapshot_id
        delete_member = pb.DeleteSnapshotRequest(snapshot_id=group.snapshots[0].snapshot_id)
        assert await code_of(c.controller.DeleteSnapshot(delete_member)) == Code.INVALID_ARGUMENT


async def test_faults_errors_then_success(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        drv.faults.add("CreateVolume", code=Code.UNAVAILABLE, message="try later", times=2)
        for _ in range(2):
            assert await code_of(c.create()) == Code.UNAVAILABLE
            assert drv.state.data.volumes == {}
        assert (await c.create()).volume.volume_id
        assert [r.code for r in drv.calls] == [Code.UNAVAILABLE, Code.UNAVAILABLE, Code.OK]


async def test_fault_after_acting_looks_like_a_lost_reply(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        drv.faults.add("CreateVolume", code=Code.DEADLINE_EXCEEDED, when="after", times=1)
        assert await code_of(c.create()) == Code.DEADLINE_EXCEEDED
        (created,) = drv.state.data.volumes.values()
        assert (await c.create()).volume.volume_id == created.volume_id


async def test_fault_reply_patches(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        drv.faults.add("CreateVolume", reply={"volume": {"volumeId": ""}}, times=1)
        drv.faults.add("GetCapacity", reply={"availableCapacity": "0"})
        drv.faults.add(
            "GetPluginInfo", reply=lambda req, resp: pb.GetPluginInfoResponse(name="other.csi")
        )
        bad = (await c.create()).volume
        assert bad.volume_id == "" and bad.capacity_bytes == GIB
        cap = await c.controller.GetCapacity(pb.GetCapacityRequest())
        assert cap.available_capacity == 0
        assert cap.maximum_volume_size.value == 1 << 40
        assert (await c.identity.GetPluginInfo(pb.GetPluginInfoRequest())).name == "other.csi"


async def test_probe_not_ready_then_ready(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        drv.faults.probe_not_ready(times=2)
        drv.faults.probe_error(times=1)
        assert await code_of(c.identity.Probe(pb.ProbeRequest())) == Code.FAILED_PRECONDITION
        second = await c.identity.Probe(pb.ProbeRequest())
        assert second.HasField("ready") and second.ready.value is False
        third = await c.identity.Probe(pb.ProbeRequest())
        assert not third.HasField("ready")


async def test_delay_times_out_the_client(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        drv.faults.delay("Probe", 5.0, times=1)
        call = c.identity.Probe(pb.ProbeRequest(), timeout=0.2)
        assert await code_of(call) == Code.DEADLINE_EXCEEDED
        await c.identity.Probe(pb.ProbeRequest(), timeout=5)
        assert len(await drv.wait_for_calls("Probe", 2)) == 2
        assert drv.calls[0].code == Code.CANCELLED


async def test_match_restricts_a_fault_to_one_volume(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        drv.faults.add("CreateVolume", code=Code.RESOURCE_EXHAUSTED, match={"name": "pvc-bad"})
        assert await code_of(c.create("pvc-bad")) == Code.RESOURCE_EXHAUSTED
        await c.create("pvc-good")
        assert [v.name for v in drv.state.data.volumes.values()] == ["pvc-good"]


async def test_without_controller_service(tmp_path: Path) -> None:
    async with (
        run_driver(tmp_path, controller_service=False) as drv,
        client(drv.endpoint) as c,
    ):
        plugin = await c.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest())
        assert pb.PluginCapability.Service.CONTROLLER_SERVICE not in {
            cap.service.type for cap in plugin.capabilities
        }
        assert await code_of(c.create()) == Code.UNIMPLEMENTED
        assert (await c.node.NodeGetInfo(pb.NodeGetInfoRequest())).node_id == "node-1"


async def test_removed_capabilities(tmp_path: Path) -> None:
    opts = {"enable_attach": True, "remove_capabilities": ["PUBLISH_UNPUBLISH_VOLUME"]}
    async with run_driver(tmp_path, **opts) as drv, client(drv.endpoint) as c:
        ctrl = await c.controller.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest())
        assert pb.ControllerServiceCapability.RPC.PUBLISH_UNPUBLISH_VOLUME not in {
            cap.rpc.type for cap in ctrl.capabilities
        }
        vol = (await c.create()).volume.volume_id
        pub = pb.ControllerPublishVolumeRequest(
            volume_id=vol, node_id="node-1", volume_capability=CAP
        )
        assert await code_of(c.controller.ControllerPublishVolume(pub)) == Code.UNIMPLEMENTED


async def test_restart_keeps_volumes(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv:
        async with client(drv.endpoint) as c:
            vol = (await c.create()).volume.volume_id
        await drv.restart()
        async with client(drv.endpoint) as c:
            listed = await c.controller.ListVolumes(pb.ListVolumesRequest())
            assert [e.volume.volume_id for e in listed.entries] == [vol]
            assert (await c.create()).volume.volume_id == vol


async def test_node_publish_creates_and_removes_target(tmp_path: Path) -> None:
    async with run_driver(tmp_path) as drv, client(drv.endpoint) as c:
        vol = (await c.create()).volume.volume_id
        staging, target = tmp_path / "staging", tmp_path / "pod" / "mount"
        await c.node.NodeStageVolume(
            pb.NodeStageVolumeRequest(
                volume_id=vol, staging_target_path=str(staging), volume_capability=CAP
            )
        )
        await c.node.NodePublishVolume(
            pb.NodePublishVolumeRequest(
                volume_id=vol,
                staging_target_path=str(staging),
                target_path=str(target),
                volume_capability=CAP,
            )
        )
        assert target.is_dir()
        assert drv.state.data.volumes[vol].published == {str(target): False}
        stats = await c.node.NodeGetVolumeStats(
            pb.NodeGetVolumeStatsRequest(volume_id=vol, volume_path=str(target))
        )
        assert stats.usage[0].total == GIB
        await c.node.NodeUnpublishVolume(
            pb.NodeUnpublishVolumeRequest(volume_id=vol, target_path=str(target))
        )
        assert not target.exists()


# -- as a process ---------------------------------------------------------------------------------


#: Deadline of a call to a driver run as a process (it shares a possibly loaded machine).
SUBPROCESS_CALL = 30.0


def _spawn(tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "csi_sidecars.playground.driver",
        f"--endpoint=unix://{tmp_path / 'csi.sock'}",
        "--nodeid=node-1",
        f"--statedir={tmp_path / 'state'}",
        *extra,
    ]
    log = (tmp_path / "driver.log").open("ab")
    return subprocess.Popen(args, stdout=log, stderr=log)


async def _wait_for_answer(
    proc: subprocess.Popen[bytes], endpoint: str, timeout: float = 60
) -> None:
    """Probe on a new channel each time until the driver answers.

    The socket file appears when the driver binds, a moment before it listens (a connection
    then is refused), and a stale one stays from a killed driver; one channel kept across
    attempts would reconnect on gRPC's back-off (1s growing towards minutes), so on a slow
    machine when the driver is seen would depend on that schedule.
    """
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "driver exited early"
        try:
            async with client(endpoint) as c:
                await c.identity.Probe(pb.ProbeRequest(), timeout=5)
            return
        except grpc.aio.AioRpcError as err:
            assert time.monotonic() < deadline, f"the driver did not answer: {err.code()}"
        await asyncio.sleep(0.1)


def _state_cli(statedir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "csi_sidecars.playground.driver", "state", f"--statedir={statedir}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


async def test_subprocess_faults_file_signals_and_state_cli(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    sock = tmp_path / "csi.sock"
    proc = _spawn(tmp_path, f"--faults-file={faults}", "--enable-attach")
    try:
        await _wait_for_answer(proc, f"unix://{sock}")
        async with client(f"unix://{sock}") as c:
            await c.identity.Probe(pb.ProbeRequest(), timeout=SUBPROCESS_CALL)
            faults.write_text(json.dumps([{"method": "Probe", "code": "FAILED_PRECONDITION"}]))
            assert await code_of(c.identity.Probe(pb.ProbeRequest(), timeout=SUBPROCESS_CALL)) == (
                Code.FAILED_PRECONDITION
            )
            write_faults_file(faults, [])
            await c.identity.Probe(pb.ProbeRequest(), timeout=SUBPROCESS_CALL)
            vol = (await c.create(timeout=SUBPROCESS_CALL)).volume.volume_id
            pub = pb.ControllerPublishVolumeRequest(
                volume_id=vol, node_id="node-1", volume_capability=CAP
            )
            await c.controller.ControllerPublishVolume(pub, timeout=SUBPROCESS_CALL)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    doc = _state_cli(tmp_path / "state")
    assert [v["volume_id"] for v in doc["volumes"]] == [vol]
    assert doc["publications"] == [{"volume_id": vol, "node_id": "node-1", "readonly": False}]


async def test_subprocess_killed_hard_keeps_its_volumes(tmp_path: Path) -> None:
    sock = tmp_path / "csi.sock"
    proc = _spawn(tmp_path)
    try:
        await _wait_for_answer(proc, f"unix://{sock}")
        async with client(f"unix://{sock}") as c:
            # A process of its own on a loaded machine: a generous deadline (it persists).
            vol = (await c.create(timeout=SUBPROCESS_CALL)).volume.volume_id
        proc.kill()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sock.exists()  # a stale socket, as after a real crash
    proc = _spawn(tmp_path)
    try:
        # The stale socket exists already: wait for the new driver to answer instead.
        await _wait_for_answer(proc, f"unix://{sock}")
        async with client(f"unix://{sock}") as c:
            assert proc.poll() is None
            listed = await c.controller.ListVolumes(
                pb.ListVolumesRequest(), timeout=SUBPROCESS_CALL
            )
            assert [e.volume.volume_id for e in listed.entries] == [vol]
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


async def test_long_tmp_path_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    async with run_driver(deep) as drv, client(drv.endpoint) as c:
        assert len(drv.socket_path) <= 100
        await c.identity.Probe(pb.ProbeRequest(), timeout=5)
        assert (deep / "driver-state" / "volumes").is_dir()
        sock_dir = Path(drv.socket_path).parent
    assert not sock_dir.exists()


def test_subprocess_reports_a_socket_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "csi_sidecars.playground.driver",
            f"--endpoint=unix://{blocker}/csi.sock",
            "--nodeid=node-1",
            f"--statedir={tmp_path / 'state'}",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error:")
    assert "Traceback" not in out.stderr
