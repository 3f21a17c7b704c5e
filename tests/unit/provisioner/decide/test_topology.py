"""Accessibility requirements: every row of the reference table, pins, errors, node affinity."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.provisioner.decide import topology as tp
from csi_sidecars.provisioner.decide.states import ProvisionError, ProvisioningState
from csi_sidecars.provisioner.decide.topology import TopologyPin, TopologyRequirement
from tests.unit.provisioner.objs import DRIVER, UID, csinode, node

K = "topology.hostpath.csi/zone"
NODES = {f"n{i}": node(f"n{i}", {K: z}) for i, z in enumerate("abc", start=1)}
NODES["n4"] = node("n4", {"other": "x"})
CSINODES = {name: csinode(name, [K]) for name in NODES}


def zones(terms: tuple[tp.Term, ...]) -> list[str]:
    return [dict(t)[K] for t in terms]


def allowed(*values: str) -> list[dict[str, Any]]:
    return [{"matchLabelExpressions": [{"key": K, "values": list(values)}]}]


def req(**kw: Any) -> TopologyRequirement | None:
    args: dict[str, Any] = {
        "driver": DRIVER,
        "pvc_uid": UID,
        "pvc_name": "data",
        "allowed_topologies": None,
        "selected_node": "",
        "strict": False,
        "immediate": True,
        "csinodes": CSINODES,
        "nodes": NODES,
    }
    args.update(kw)
    return tp.accessibility_requirements(**args)[0]


@pytest.mark.parametrize("immediate", [True, False])
def test_late_strict(immediate: bool) -> None:
    got = req(selected_node="n2", strict=True, immediate=immediate)
    assert got is not None
    assert zones(got.requisite) == zones(got.preferred) == ["b"]


def test_late_strict_allowed_contains_selected() -> None:
    got = req(selected_node="n2", strict=True, allowed_topologies=allowed("a", "b"))
    assert got is not None and zones(got.requisite) == ["b"] and zones(got.preferred) == ["b"]


def test_late_strict_selected_outside_allowed() -> None:
    with pytest.raises(ProvisionError) as exc:
        req(selected_node="n3", strict=True, allowed_topologies=allowed("a", "b"))
    assert exc.value.state == ProvisioningState.NO_CHANGE
    assert str(exc.value) == (
        "error generating accessibility requirements: selected node '\"n3\"' topology "
        f"'[{{{K} c}}]' is not in allowed topologies: [[{{{K} a}}] [{{{K} b}}]]"
    )


@pytest.mark.parametrize("immediate", [True, False])
def test_late_aggregated_selected_first(immediate: bool) -> None:
    got = req(selected_node="n2", immediate=immediate)
    assert got is not None
    assert zones(got.requisite) == ["a", "b", "c"]
    assert zones(got.preferred) == ["b", "c", "a"]


def test_late_allowed_rotated_to_selected() -> None:
    got = req(selected_node="n3", allowed_topologies=allowed("b", "c", "a"))
    assert got is not None
    assert zones(got.requisite) == ["a", "b", "c"]
    assert zones(got.preferred) == ["c", "a", "b"]


def test_late_selected_not_in_allowed_nonstrict() -> None:
    with pytest.raises(ProvisionError, match='from selected node "n3" is not in requisite'):
        req(selected_node="n3", allowed_topologies=allowed("a"))


def rotation(name: str, n: int) -> int:
    hash_value, index = tp.pvc_name_hash_and_index(name)
    return ((hash_value + index) & 0xFFFFFFFF) % n


def test_immediate_allowed_hash_rotation() -> None:
    got = req(pvc_name="data-web-1", allowed_topologies=allowed("c", "a", "b"))
    assert got is not None
    assert zones(got.requisite) == ["a", "b", "c"]
    start = rotation("data-web-1", 3)
    assert zones(got.preferred) == (["a", "b", "c"][start:] + ["a", "b", "c"][:start])


def test_immediate_aggregated_hash_rotation() -> None:
    got = req(pvc_name="data-web-0")
    assert got is not None
    assert zones(got.requisite) == ["a", "b", "c"]
    start = rotation("data-web-0", 3)
    assert zones(got.preferred)[0] == ["a", "b", "c"][start]


def test_immediate_without_immediate_topology_has_no_requirement() -> None:
    assert req(immediate=False) is None


def test_statefulset_spreading() -> None:
    firsts = [zones(r.preferred)[0] for r in (req(pvc_name=f"data-web-{i}") for i in range(3)) if r]
    assert sorted(firsts) == ["a", "b", "c"]
    a, b = req(pvc_name="data-web-1"), req(pvc_name="logs-web-1")
    assert a is not None and b is not None and a.preferred == b.preferred


@pytest.mark.parametrize(
    ("name", "expected_hash_input", "index"),
    [
        ("data-web-2", "web", 2),
        ("web-7", "web", 7),
        ("claim-my-set-3", "set", 3),
        ("plain", "plain", 0),
        ("name-x", "name-x", 0),
        ("big-99999999999", "big-99999999999", 0),
    ],
)
def test_pvc_name_hash(name: str, expected_hash_input: str, index: int) -> None:
    assert tp.pvc_name_hash_and_index(name) == (tp.fnv32(expected_hash_input.encode()), index)


def test_fnv32_vectors() -> None:
    assert tp.fnv32(b"") == 0x811C9DC5
    assert tp.fnv32(b"a") == 0x050C5D7E
    assert tp.fnv32(b"foobar") == 0x31F0B262


def test_empty_name_is_deterministic() -> None:
    assert req(pvc_name="") == req(pvc_name="")


def test_pin_keeps_request_identical_across_retries() -> None:
    args: dict[str, Any] = {"driver": DRIVER, "pvc_uid": UID, "pvc_name": "data",
                            "allowed_topologies": None, "selected_node": "n1", "strict": False,
                            "immediate": True}  # fmt: skip
    first, pin = tp.accessibility_requirements(**args, csinodes=CSINODES, nodes=NODES)
    assert pin.topology_keys == (K,) and pin.requisite_terms and pin.node_labels
    grown = {**NODES, "n5": node("n5", {K: "d"})}
    relabeled = {**grown, "n1": node("n1", {K: "z"})}
    again, pin2 = tp.accessibility_requirements(**args, csinodes={}, nodes=relabeled, pin=pin)
    assert again == first and pin2 == pin
    fresh, _ = tp.accessibility_requirements(**args, csinodes=CSINODES, nodes=relabeled)
    assert fresh != first


def test_pins_store() -> None:
    pins = tp.TopologyPins()
    pins.put("u", TopologyPin(topology_keys=("k",)))
    assert pins.get("u") == TopologyPin(topology_keys=("k",)) and len(pins) == 1
    pins.drop("u")
    pins.drop("u")
    assert pins.get("u") is None


def test_immediate_keys_choice_is_deterministic() -> None:
    mixed = {**CSINODES, "m": csinode("m", ["rack"])}
    nodes = {**NODES, "m": node("m", {"rack": "r1"})}
    one = [
        tp.accessibility_requirements(
            driver=DRIVER, pvc_uid=UID, pvc_name="x", allowed_topologies=None, selected_node="",
            strict=False, immediate=True, csinodes=mixed, nodes=nodes,
        )[0]
        for _ in range(3)
    ]  # fmt: skip
    assert one[0] == one[1] == one[2]


@pytest.mark.parametrize(
    ("kw", "state", "message"),
    [
        ({"selected_node": "gone", "nodes": {**NODES, "gone": node("gone", {K: "a"})}},
         ProvisioningState.RESCHEDULE,
         'failed to get selected CSINode gone: csinode.storage.k8s.io "gone" not found'),
        ({"selected_node": "n1", "nodes": {}}, ProvisioningState.RESCHEDULE,
         'failed to get selected Node n1: node "n1" not found'),
        ({"selected_node": "n1", "csinodes": {"n1": csinode("n1", None)}},
         ProvisioningState.NO_CHANGE,
         "error generating accessibility requirements: no topology key found for node n1"),
        ({"selected_node": "n4"}, ProvisioningState.NO_CHANGE,
         "error generating accessibility requirements: topology labels from selected node "
         f"map[other:x] does not match topology keys from CSINode [{K}]"),
        ({"csinodes": {"x": csinode("x", None)}}, ProvisioningState.NO_CHANGE,
         "error generating accessibility requirements: no available topology found"),
        ({"nodes": {"n4": NODES["n4"]}}, ProvisioningState.NO_CHANGE,
         f"error generating accessibility requirements: topologyKeys [{K}] were not found on "
         "any nodes"),
    ],
)  # fmt: skip
def test_errors(kw: dict[str, Any], state: ProvisioningState, message: str) -> None:
    with pytest.raises(ProvisionError) as exc:
        req(**kw)
    assert exc.value.state == state
    assert str(exc.value) == message


def test_flatten_cross_product() -> None:
    terms = tp.flatten(
        [
            {"matchLabelExpressions": [
                {"key": "zone", "values": ["z1", "z2"]}, {"key": "rack", "values": ["rA", "rB"]}
            ]},
            {"matchLabelExpressions": [{"key": "zone", "values": ["z3"]}]},
        ]
    )  # fmt: skip
    assert terms == [
        (("rack", "rA"), ("zone", "z1")),
        (("rack", "rA"), ("zone", "z2")),
        (("rack", "rB"), ("zone", "z1")),
        (("rack", "rB"), ("zone", "z2")),
        (("zone", "z3"),),
    ]


def test_requisite_sorted_by_length_then_value_and_deduplicated() -> None:
    multi = [
        {"matchLabelExpressions": [{"key": K, "values": ["b", "a", "b"]}]},
        {"matchLabelExpressions": [{"key": K, "values": ["a"]}, {"key": "r", "values": ["1"]}]},
    ]
    got = req(allowed_topologies=multi, selected_node="n1")
    assert got is not None
    assert got.requisite == (((K, "a"),), ((K, "b"),), (("r", "1"), (K, "a")))


@pytest.mark.parametrize(
    ("term", "other", "expected"),
    [
        ((), (("a", "1"),), True),
        ((("a", "1"),), (("a", "1"), ("b", "2")), True),
        ((("b", "2"),), (("a", "1"), ("b", "2")), True),
        ((("a", "2"),), (("a", "1"), ("b", "2")), False),
        ((("c", "1"),), (("a", "1"), ("b", "2")), False),
    ],
)
def test_subset(term: tp.Term, other: tp.Term, expected: bool) -> None:
    assert tp.is_subset(term, other) is expected


def test_requirement_proto_roundtrip() -> None:
    r = TopologyRequirement(((("a", "1"), ("b", "2")),), ((("a", "1"), ("b", "2")),))
    msg = r.to_proto()
    assert msg.requisite[0].segments == {"a": "1", "b": "2"}
    assert TopologyRequirement.from_proto(msg) == r


@pytest.mark.parametrize(
    ("requisite", "preferred", "allowed_t", "strict", "ok"),
    [
        ([(("z", "a"),)], [(("z", "a"),)], None, False, True),
        ([(("z", "a"),), (("z", "b"),)], [(("z", "b"),), (("z", "a"),)], None, False, True),
        ([(("z", "a"),), (("z", "b"),)], [(("z", "b"),)], None, False, False),
        ([(("z", "a"),), (("z", "b"),)], [(("z", "a"),), (("z", "b"),)], None, True, False),
        ([(("z", "c"),)], [(("z", "c"),)], [{"matchLabelExpressions": [
            {"key": "z", "values": ["a"]}]}], False, False),
        ([(("r", "1"), ("z", "a"))], [(("r", "1"), ("z", "a"))], [{"matchLabelExpressions": [
            {"key": "z", "values": ["a"]}]}], False, True),
        ([], [], None, False, False),
    ],
)  # fmt: skip
def test_pinned_requirement_allowed(
    requisite: list[tp.Term], preferred: list[tp.Term], allowed_t: Any, strict: bool, ok: bool
) -> None:
    r = TopologyRequirement(tuple(requisite), tuple(preferred))
    assert tp.pinned_requirement_allowed(r, allowed_topologies=allowed_t, strict=strict) is ok


def test_volume_node_affinity() -> None:
    topo = [
        csi_pb2.Topology(segments={"zone": "a", "rack": "1"}),
        csi_pb2.Topology(segments={}),
        csi_pb2.Topology(segments={"zone": "b"}),
    ]
    assert tp.volume_node_affinity(topo) == {
        "required": {
            "nodeSelectorTerms": [
                {"matchExpressions": [
                    {"key": "rack", "operator": "In", "values": ["1"]},
                    {"key": "zone", "operator": "In", "values": ["a"]},
                ]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            ]
        }
    }  # fmt: skip
    assert tp.volume_node_affinity([]) is None
    assert tp.volume_node_affinity([csi_pb2.Topology()]) is None
