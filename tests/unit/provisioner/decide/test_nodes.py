"""Node deployment's pure side: which claims and volumes are this node's, the owner delay."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.provisioner.decide import nodes
from csi_sidecars.provisioner.decide.nodes import NodeCheck
from tests.unit.provisioner.objs import DRIVER, pvc, sc

SEL = "volume.kubernetes.io/selected-node"
GA = "volume.kubernetes.io/storage-provisioner"
KEY = "topology.hostpath.csi/node"
IMMEDIATE = sc(volumeBindingMode="Immediate")
LATE = sc(volumeBindingMode="WaitForFirstConsumer")


@pytest.mark.parametrize(
    ("claim", "cls", "immediate", "expected"),
    [
        (pvc(annotations={GA: DRIVER, SEL: "n1"}), LATE, True, NodeCheck.MINE),
        (pvc(annotations={GA: DRIVER, SEL: "n1"}), IMMEDIATE, False, NodeCheck.MINE),
        (pvc(annotations={GA: DRIVER, SEL: "n2"}), IMMEDIATE, True, NodeCheck.OTHER),
        (pvc(), IMMEDIATE, True, NodeCheck.RACE),
        (pvc(), IMMEDIATE, False, NodeCheck.OTHER),
        (pvc(), LATE, True, NodeCheck.OTHER),
        (pvc(), sc(), True, NodeCheck.OTHER),  # no binding mode: not Immediate, as Go
        (pvc(), None, True, NodeCheck.OTHER),
    ],
)
def test_check_node(claim: dict[str, Any], cls: Any, immediate: bool, expected: NodeCheck) -> None:
    assert nodes.check_node(claim, cls, "n1", immediate) == expected


def test_with_selected_node() -> None:
    claim = pvc()
    owned = nodes.with_selected_node(claim, "n1")
    assert owned is not None and owned["metadata"]["annotations"][SEL] == "n1"
    assert owned["metadata"]["annotations"][GA] == DRIVER
    assert SEL not in claim["metadata"]["annotations"]  # the input is left alone
    assert nodes.with_selected_node(owned, "n2") is None  # taken: no write


@pytest.mark.parametrize(
    ("failures", "random", "expected"),
    [(0, 0.0, 20.0), (0, 0.5, 10.0), (1, 0.0, 40.0), (2, 0.0, 60.0), (9, 0.25, 55.0),
     (0, 0.999999, 0.00002), (100, 0.0, 60.0)],
)  # fmt: skip
def test_owner_delay_is_gos_jittered_exponential(
    failures: int, random: float, expected: float
) -> None:
    assert nodes.owner_delay(failures, 20.0, 60.0, random) == pytest.approx(expected)


def test_owner_delay_never_negative() -> None:
    assert nodes.owner_delay(0, 20.0, 5.0, 0.9) == 0.0


def test_static_topology() -> None:
    csinodes, node_objs = nodes.static_topology(DRIVER, "n1", "id-1", {KEY: "n1", "zone": "z"})
    assert csinodes == {"n1": {"metadata": {"name": "n1"}, "spec": {"drivers": [
        {"name": DRIVER, "nodeID": "id-1", "topologyKeys": [KEY, "zone"]}]}}}  # fmt: skip
    assert node_objs == {"n1": {"metadata": {"name": "n1", "labels": {KEY: "n1", "zone": "z"}}}}
    plain, _ = nodes.static_topology(DRIVER, "n1", "id-1", {})
    assert "topologyKeys" not in plain["n1"]["spec"]["drivers"][0]


def _pv(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
        {"matchExpressions": t} for t in terms]}}}}  # fmt: skip


def _in(key: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": list(values)}


@pytest.mark.parametrize(
    ("pv", "accessible"),
    [
        (_pv([_in(KEY, "n1")]), True),
        (_pv([_in(KEY, "n2")]), False),
        (_pv([_in(KEY, "n2")], [_in(KEY, "n1")]), True),  # terms are OR-ed
        (_pv([_in(KEY, "n1"), _in("zone", "y")]), False),  # expressions AND-ed
        (_pv([{"key": "zone", "operator": "NotIn", "values": ["y"]}]), True),
        (_pv([{"key": "rack", "operator": "Exists"}]), False),
        (_pv([{"key": "rack", "operator": "DoesNotExist"}]), True),
        ({"spec": {}}, True),  # no affinity: every node
    ],
)
def test_volume_accessible(pv: dict[str, Any], accessible: bool) -> None:
    assert nodes.volume_accessible(pv, {KEY: "n1", "zone": "z"}) is accessible
    assert nodes.volume_accessible(pv, None) is True  # no node topology: all accessible, as Go
