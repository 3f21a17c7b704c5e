"""Fault rules of the playground driver: matching, counting, and the JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest

from csi_sidecars.playground.driver.faults import FaultRule, Faults, write_faults_file


def no_fields() -> dict[str, object]:
    raise AssertionError("request fields should not be needed")


def test_times_and_after() -> None:
    faults = Faults()
    rule = faults.add("CreateVolume", code=grpc.StatusCode.UNAVAILABLE, times=2, after=1)
    errors = [faults.decide("CreateVolume", no_fields).error for _ in range(5)]
    assert errors == [None, rule, rule, None, None]
    assert (rule.seen, rule.fired) == (3, 2)
    assert faults.decide("DeleteVolume", no_fields).error is None


def test_wildcard_delays_add_up_and_first_error_wins() -> None:
    faults = Faults()
    faults.delay("*", 0.5)
    first = faults.add("Probe", code=grpc.StatusCode.FAILED_PRECONDITION, delay=0.25)
    faults.add("Probe", code=grpc.StatusCode.UNAVAILABLE)
    decision = faults.decide("Probe", no_fields)
    assert decision.delay == 0.75
    assert decision.error is first
    assert decision.error_before() is first and decision.error_after() is None


def test_match_on_request_fields_is_lazy() -> None:
    faults = Faults()
    faults.add("CreateVolume", code=grpc.StatusCode.INTERNAL, match={"name": "pvc-2"})
    calls = []

    def fields(name: str) -> dict[str, object]:
        calls.append(name)
        return {"name": name, "capacity_range": {"required_bytes": "5"}}

    assert faults.decide("CreateVolume", lambda: fields("pvc-1")).error is None
    assert faults.decide("CreateVolume", lambda: fields("pvc-2")).error is not None
    assert faults.decide("Probe", no_fields).error is None
    assert calls == ["pvc-1", "pvc-2"]


def test_after_mode_and_replies() -> None:
    faults = Faults()
    faults.add("CreateVolume", code=grpc.StatusCode.DEADLINE_EXCEEDED, when="after", times=1)
    faults.probe_not_ready(times=1)
    decision = faults.decide("CreateVolume", no_fields)
    assert decision.error_before() is None and decision.error_after() is not None
    assert faults.decide("Probe", no_fields).patches == [{"ready": False}]
    assert faults.decide("Probe", no_fields).patches == []
    with pytest.raises(ValueError):
        faults.add("Probe", when="during")


def test_rule_from_json() -> None:
    rule = FaultRule.from_json({"method": "Probe", "code": "unavailable", "times": 3})
    assert rule.code == grpc.StatusCode.UNAVAILABLE
    assert (
        FaultRule.from_json({"method": "X", "code": 9}).code == grpc.StatusCode.FAILED_PRECONDITION
    )
    for bad in ({"code": "UNAVAILABLE"}, {"method": "X", "code": "NOPE"}, {"method": "X", "y": 1}):
        with pytest.raises(ValueError):
            FaultRule.from_json(bad)


def test_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    faults = Faults(str(path))
    faults.refresh()
    assert faults.file_rules == []

    path.write_text(json.dumps([{"method": "Probe", "code": "FAILED_PRECONDITION", "times": 1}]))
    faults.refresh()
    assert faults.decide("Probe", no_fields).error is not None
    faults.refresh()  # unchanged file: the counters are kept
    assert faults.decide("Probe", no_fields).error is None

    path.write_text(json.dumps({"rules": [{"method": "Probe", "delay": 2}]}))
    os.utime(path, ns=(1, 10**18))
    faults.refresh()
    assert faults.decide("Probe", no_fields).delay == 2

    path.write_text("{not json")
    os.utime(path, ns=(1, 2 * 10**18))
    faults.refresh()  # invalid: the previous rules stay
    assert faults.decide("Probe", no_fields).delay == 2

    path.unlink()
    faults.refresh()
    assert faults.file_rules == []


def test_write_faults_file_is_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    faults = Faults(str(path))
    write_faults_file(path, [{"method": "Probe", "code": "UNAVAILABLE"}])
    faults.refresh()
    assert faults.decide("Probe", no_fields).error is not None
    write_faults_file(path, [{"method": "Probe", "code": "UNKNOWN"}])  # new inode
    faults.refresh()
    rule = faults.decide("Probe", no_fields).error
    assert rule is not None and rule.code == grpc.StatusCode.UNKNOWN
    with pytest.raises(ValueError):
        write_faults_file(path, [{"method": "Probe", "when": "never"}])
    assert json.loads(path.read_text())["rules"][0]["code"] == "UNKNOWN"
