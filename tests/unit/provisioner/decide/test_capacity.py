"""Capacity tracking's pure side: segments, items, the GetCapacity request, the object writes."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.resources import CSI_STORAGE_CAPACITIES, ApiError
from csi_sidecars.provisioner.decide import capacity as cap
from csi_sidecars.provisioner.decide.capacity import Item, Reported
from tests.unit.provisioner.objs import DRIVER, csinode, node, sc

KEY = "topology.hostpath.csi/node"
OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "prov-7d", "uid": "rs-uid",
         "controller": True}  # fmt: skip


@pytest.mark.parametrize(
    ("node_name", "expected"),
    [
        ("", "external-provisioner"),
        ("node-1", "external-provisioner-node-1"),
        # Go's getNameWithMaxLength (values printed by the Go function itself).
        ("a-very-long-node-name-for-the-provisioner-of-this-cluster-0001",
         "external-provisioner-49d06419"),
        ("worker-node-with-a-long-name-0123456789abcdef",
         "external-53f40b57-worker-node-with-a-long-name-0123456789abcdef"),
    ],
)  # fmt: skip
def test_managed_by_matches_go(node_name: str, expected: str) -> None:
    assert cap.managed_by_id(node_name) == expected
    assert len(cap.managed_by_id(node_name)) <= 63


def test_node_segments_follow_csinodes_and_node_labels() -> None:
    csinodes = [
        csinode("n1", [KEY, "zone"]),
        csinode("n2", [KEY, "zone"]),
        csinode("n3", [KEY]),  # its Node lacks the label: skipped until it has it
        csinode("n4", None),  # driver not registered there
        csinode("n5", [KEY], driver="other.csi"),
        csinode("gone", [KEY]),  # no Node object
    ]
    nodes = {
        "n1": node("n1", {KEY: "n1", "zone": "z1"}),
        "n2": node("n2", {KEY: "n2", "zone": "z1"}),
        "n3": node("n3", {}),
        "n4": node("n4", {KEY: "n4"}),
        "n5": node("n5", {KEY: "n5"}),
    }
    assert cap.node_segments(DRIVER, csinodes, nodes) == [
        ((KEY, "n1"), ("zone", "z1")),
        ((KEY, "n2"), ("zone", "z1")),
    ]


def test_driver_without_keys_has_the_empty_segment_once() -> None:
    nodes = {"n1": node("n1", {}), "n2": node("n2", {})}
    assert cap.node_segments(DRIVER, [csinode("n1", []), csinode("n2", [])], nodes) == [()]


def test_wanted_items_skip_immediate_classes_unless_asked() -> None:
    segments = [((KEY, "n1"),), ((KEY, "n2"),)]
    classes = [
        sc(name="late", volumeBindingMode="WaitForFirstConsumer"),
        sc(name="now", volumeBindingMode="Immediate"),
        sc(name="theirs", provisioner="other.csi", volumeBindingMode="WaitForFirstConsumer"),
    ]
    assert cap.wanted_items(segments, classes, DRIVER, False) == {
        Item("late", ((KEY, "n1"),)), Item("late", ((KEY, "n2"),))
    }  # fmt: skip
    assert len(cap.wanted_items(segments, classes, DRIVER, True)) == 4


def test_item_keys_round_trip_and_dedupe() -> None:
    item = Item("fast", ((KEY, "n1"), ("zone", "a:b")))
    assert Item.from_key(item.key) == item
    assert Item("fast", ((KEY, "n1"), ("zone", "a:b"))).key == item.key
    assert Item.from_key(Item("x", ()).key) == Item("x", ())
    with pytest.raises(ValueError):
        Item.from_key('{"not": "a list"}')


def test_item_of_an_object() -> None:
    obj = {"storageClassName": "fast", "nodeTopology": {"matchLabels": {"zone": "a", KEY: "n1"}}}
    assert cap.item_of(obj) == Item("fast", ((KEY, "n1"), ("zone", "a")))
    assert cap.item_of({"storageClassName": "fast"}) == Item("fast", ())
    assert cap.item_of({"nodeTopology": {}}) is None


def test_capacity_request_strips_reserved_keys_and_sends_the_segment() -> None:
    cls = sc(parameters={"kind": "fast", "csi.storage.k8s.io/provisioner-secret-name": "s"})
    req = cap.capacity_request(cls, ((KEY, "n1"),))
    assert req == csi_pb2.GetCapacityRequest(
        parameters={"kind": "fast"},
        accessible_topology=csi_pb2.Topology(segments={KEY: "n1"}),
    )
    assert not req.volume_capabilities
    assert not cap.capacity_request(cls, None).HasField("accessible_topology")
    assert cap.capacity_request(cls, ()).HasField("accessible_topology")  # all nodes, as Go


def test_reported_values_are_checked() -> None:
    resp = csi_pb2.GetCapacityResponse(available_capacity=-5)
    assert cap.reported(resp) == Reported(0, None)
    resp.maximum_volume_size.value = 1 << 30
    assert cap.reported(resp) == Reported(0, 1 << 30)


ITEM = Item("fast", ((KEY, "n1"),))


def _write(existing: dict[str, Any] | None, value: Reported, owner: Any = OWNER) -> a.Plan:
    return cap.write_plan(ITEM, value, existing, namespace="kube-system", driver=DRIVER,
                          managed_by="external-provisioner", owner=owner)  # fmt: skip


def test_create_the_object_as_go_writes_it() -> None:
    (create,) = _write(None, Reported(10 << 30, 2 << 30))
    assert isinstance(create, a.Create) and create.resource == CSI_STORAGE_CAPACITIES
    assert create.namespace == "kube-system"
    assert create.body == {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIStorageCapacity",
        "metadata": {
            "generateName": "csisc-",
            "labels": {"csi.storage.k8s.io/drivername": DRIVER,
                       "csi.storage.k8s.io/managed-by": "external-provisioner"},
            "ownerReferences": [OWNER],
        },
        "storageClassName": "fast",
        "nodeTopology": {"matchLabels": {KEY: "n1"}},
        "capacity": "10Gi",
        "maximumVolumeSize": "2Gi",
    }  # fmt: skip
    assert create.then is not None
    (written,) = create.then({"metadata": {"name": "csisc-abcde"}})
    assert isinstance(written, cap.Written) and written.name == "csisc-abcde"
    (no_owner,) = _write(None, Reported(0), owner=None)
    assert isinstance(no_owner, a.Create) and "ownerReferences" not in no_owner.body["metadata"]
    assert "maximumVolumeSize" not in no_owner.body and no_owner.body["capacity"] == "0"


def _existing(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "csisc-1", "namespace": "kube-system", "resourceVersion": "7",
                     "ownerReferences": [OWNER]},
        "storageClassName": "fast",
        "nodeTopology": {"matchLabels": {KEY: "n1"}},
        "capacity": "10Gi",
        "maximumVolumeSize": "2Gi",
    }  # fmt: skip
    body.update(fields)
    return body


def test_same_values_and_owner_are_not_written() -> None:
    assert _write(_existing(), Reported(10 << 30, 2 << 30)) == (a.Done(),)
    # Another spelling of the same quantity is the same value.
    assert _write(_existing(capacity="10737418240"), Reported(10 << 30, 2 << 30)) == (a.Done(),)


@pytest.mark.parametrize(
    ("existing", "value"),
    [
        (_existing(), Reported(9 << 30, 2 << 30)),
        (_existing(), Reported(10 << 30, None)),
        (_existing(maximumVolumeSize=None), Reported(10 << 30, 2 << 30)),
        (_existing(capacity="garbage"), Reported(10 << 30, 2 << 30)),
    ],
)
def test_changed_values_are_updated(existing: dict[str, Any], value: Reported) -> None:
    (replace,) = _write(existing, value)
    assert isinstance(replace, a.Replace)
    assert replace.body["metadata"]["resourceVersion"] == "7"
    assert cap._bytes(replace.body["capacity"]) == value.available
    assert cap._bytes(replace.body.get("maximumVolumeSize")) == value.maximum
    assert replace.on_error is not None
    assert isinstance(replace.on_error(ApiError(409, "Conflict", "stale"))[0], a.Redecide)
    assert isinstance(replace.on_error(ApiError(500, "", "boom"))[0], a.Retry)


def test_missing_owner_is_added() -> None:
    other = {"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": "pod-uid", "controller": False}
    existing = _existing()
    existing["metadata"]["ownerReferences"] = [other]
    (replace,) = _write(existing, Reported(10 << 30, 2 << 30))
    assert isinstance(replace, a.Replace)
    assert replace.body["metadata"]["ownerReferences"] == [other, OWNER]
    assert existing["metadata"]["ownerReferences"] == [other]  # the input is left alone


def test_affinity_segments() -> None:
    def pv(terms: Any) -> dict[str, Any]:
        return {"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": terms}}}}

    one = [{"matchExpressions": [{"key": KEY, "operator": "In", "values": ["n1"]}]}]
    assert cap.affinity_segments(pv(one)) == [((KEY, "n1"),)]
    many = [{"matchExpressions": [{"key": KEY, "operator": "In", "values": ["n1", "n2"]}]}]
    assert cap.affinity_segments(pv(many)) == []
    assert cap.affinity_segments({"spec": {}}) is None


def test_owner_references() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "prov-0", "uid": "pod-uid",
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": "prov", "uid": "ss-uid",
                                             "controller": True}]}}  # fmt: skip
    assert cap.owner_reference(pod) == {"apiVersion": "v1", "kind": "Pod", "name": "prov-0",
                                        "uid": "pod-uid", "controller": True}  # fmt: skip
    expected = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "prov", "uid": "ss-uid",
                "controller": True}  # fmt: skip
    assert cap.controller_of(pod) == expected
    assert cap.controller_of({"metadata": {}}) is None
