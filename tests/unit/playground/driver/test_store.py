"""Persistence of the playground driver's state directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csi_sidecars.playground.driver.model import Snapshot, StateData, Volume
from csi_sidecars.playground.driver.store import StateStore, load_state


def test_round_trip_and_no_leftover_temp_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "st")
    data = StateData()
    data.volumes["v1"] = Volume("v1", "pvc-1", 5, attached={"n1": True}, staged=["/s"])
    data.snapshots["s1"] = Snapshot("s1", "snap", "v1", 5, creation_time=1.5)
    store.save(data)
    store.save(data)
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == [
        "snapshots",
        "state.json",
        "volumes",
    ]
    back = load_state(tmp_path / "st")
    assert back == data
    assert back.publications() == [{"volume_id": "v1", "node_id": "n1", "readonly": True}]


def test_missing_state_is_empty_and_bad_state_is_an_error(tmp_path: Path) -> None:
    assert load_state(tmp_path) == StateData()
    (tmp_path / "state.json").write_text("{")
    with pytest.raises(ValueError):
        load_state(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError):
        load_state(tmp_path)


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    doc = {"version": 1, "volumes": [{"volume_id": "v", "name": "n", "capacity_bytes": 1, "x": 1}]}
    (tmp_path / "state.json").write_text(json.dumps(doc))
    assert load_state(tmp_path).volumes["v"].name == "n"
