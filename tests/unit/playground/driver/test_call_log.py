"""The driver's --call-log: one JSON line per finished call, paths and IDs only."""

from __future__ import annotations

from pathlib import Path

import grpc

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground.driver.server import CallRecord, call_log_line, read_call_log


def test_a_line_names_the_call_its_outcome_and_paths_but_no_secret(tmp_path: Path) -> None:
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id="v1", staging_target_path="/k/globalmount", secrets={"password": "hunter2"}
    )
    line = call_log_line(CallRecord("NodeStageVolume", request, grpc.StatusCode.OK))
    assert "hunter2" not in line and "password" not in line
    log = tmp_path / "calls.jsonl"
    log.write_text(line + "\n\n")
    (entry,) = read_call_log(log)
    assert entry["method"] == "NodeStageVolume"
    assert entry["code"] == "OK"
    assert entry["volume_id"] == "v1"
    assert entry["staging_target_path"] == "/k/globalmount"
    assert read_call_log(tmp_path / "absent") == []
