"""The driver's ``--request-log``: every call on disk with wall times, outcomes and reply IDs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from csi_sidecars.csi.messages import csi_pb2 as pb
from csi_sidecars.playground.driver import run_driver
from csi_sidecars.playground.driver.options import parse_args
from csi_sidecars.playground.driver.requestlog import read_request_log
from tests.component.driver.test_driver import CAP, client, code_of

Code = grpc.StatusCode


async def test_calls_are_logged_with_outcome_and_ids(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    before = time.time()
    async with run_driver(tmp_path, request_log=str(log)) as drv, client(drv.endpoint) as c:
        drv.faults.add("CreateVolume", code=Code.DEADLINE_EXCEEDED, when="after", times=1)
        assert await code_of(c.create("pvc-a")) == Code.DEADLINE_EXCEEDED
        vol = (await c.create("pvc-a")).volume.volume_id
        drv.faults.add("DeleteVolume", code=Code.UNAVAILABLE, times=1)
        assert await code_of(c.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=vol))) == (
            Code.UNAVAILABLE
        )
    calls = [c for c in read_request_log(log) if c.method in ("CreateVolume", "DeleteVolume")]
    assert [(c.method, c.code) for c in calls] == [
        ("CreateVolume", "DEADLINE_EXCEEDED"),
        ("CreateVolume", "OK"),
        ("DeleteVolume", "UNAVAILABLE"),
    ]
    # The lost reply still names the volume the driver made: the same one the retry got.
    assert calls[0].result == calls[1].result == {"volume_id": vol}
    assert calls[0].fields == {"name": "pvc-a", "required_bytes": 1 << 30}
    assert calls[2].fields == {"volume_id": vol}
    assert all(before <= c.started <= (c.finished or 0) <= time.time() for c in calls)
    assert len({c.id for c in calls}) == 3


async def test_a_call_cut_short_has_no_end(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    async with run_driver(tmp_path, request_log=str(log)) as drv, client(drv.endpoint) as c:
        drv.faults.add("CreateVolume", delay=5)
        req = pb.CreateVolumeRequest(name="slow", volume_capabilities=[CAP])
        assert await code_of(c.controller.CreateVolume(req, timeout=0.3)) == (
            Code.DEADLINE_EXCEEDED
        )
        await asyncio.sleep(0)
    (call,) = [c for c in read_request_log(log) if c.method == "CreateVolume"]
    assert call.fields == {"name": "slow"}
    assert call.code in ("CANCELLED", None)


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    from csi_sidecars.playground.driver.requestlog import RequestLog

    log = RequestLog(tmp_path / "r.jsonl", clock=lambda: 7.0)
    req = pb.CreateVolumeRequest(
        name="pvc-s", secrets={"password": "hunter2-secret"}, parameters={"p": "v"}
    )
    call_id = log.started("CreateVolume", req)
    log.finished(call_id, "OK", pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v1")))
    log.close()
    text = (tmp_path / "r.jsonl").read_text()
    assert "hunter2" not in text and '"p"' not in text
    (call,) = read_request_log(tmp_path / "r.jsonl")
    assert (call.started, call.finished, call.result) == (7.0, 7.0, {"volume_id": "v1"})


def test_torn_last_line_and_missing_file(tmp_path: Path) -> None:
    assert read_request_log(tmp_path / "absent.jsonl") == []
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"ev": "start", "id": "1-1", "t": 1.0, "method": "Probe", "fields": {}}\n{"ev": "en'
    )
    (call,) = read_request_log(path)
    assert (call.method, call.finished, call.code) == ("Probe", None, None)


def test_flag() -> None:
    assert parse_args(["--nodeid=n", "--request-log=/x/r.jsonl"]).request_log == "/x/r.jsonl"
    assert parse_args(["--nodeid=n"]).request_log is None
