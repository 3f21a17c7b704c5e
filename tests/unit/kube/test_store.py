"""Slim projection and packed store."""

from __future__ import annotations

from csi_sidecars.kube.store import SHARE_LIMIT, Projection, Store


def test_projection_keeps_only_declared_fields_plus_identity() -> None:
    p = Projection(["spec.csi.driver", "metadata.annotations"])
    obj = {
        "metadata": {
            "name": "a",
            "namespace": "n",
            "resourceVersion": "5",
            "uid": "u",
            "annotations": {"k": "v"},
        },
        "spec": {"csi": {"driver": "d", "volumeHandle": "h"}, "capacity": {"storage": "1Gi"}},
        "status": {"phase": "Bound"},
    }
    assert p.slim(obj) == {
        "metadata": {
            "name": "a",
            "namespace": "n",
            "resourceVersion": "5",
            "annotations": {"k": "v"},
        },
        "spec": {"csi": {"driver": "d"}},
    }


def test_missing_fields_are_absent_and_lists_round_trip() -> None:
    p = Projection(["metadata.finalizers", "spec.a.b", "spec.list"])
    obj = {"metadata": {"name": "a"}, "spec": {"list": [{"x": [1, 2]}, "s"]}}
    assert p.slim(obj) == {"metadata": {"name": "a"}, "spec": {"list": [{"x": [1, 2]}, "s"]}}


def test_whole_objects_when_no_fields() -> None:
    obj = {"metadata": {"name": "a"}, "data": {"x": [1, {"y": None}]}}
    assert Projection(None).slim(obj) == obj


def test_redundant_paths_collapse() -> None:
    p = Projection(["spec", "spec.csi.driver"])
    assert p.fields is not None and "spec.csi.driver" not in p.fields
    assert p.slim({"metadata": {"name": "a"}, "spec": {"x": 1}}) == {
        "metadata": {"name": "a"},
        "spec": {"x": 1},
    }


def test_pools_share_low_cardinality_strings_only_until_limit() -> None:
    p = Projection(["spec.driver", "metadata.uid"])
    objs = [
        {"metadata": {"name": f"n{i}", "uid": f"uid-{i}"}, "spec": {"driver": "d" + "x" * 20}}
        for i in range(200)
    ]
    packed = [p.pack(o) for o in objs]
    idx = p.fields.index("spec.driver")  # type: ignore[union-attr]
    assert all(x[idx] is packed[0][idx] for x in packed)
    # Unique values stop being pooled (no unbounded growth).
    uid_pool = p._value_pools[p.fields.index("metadata.uid")]  # type: ignore[union-attr]
    assert uid_pool.values is None


def test_store_keys_namespaced_and_cluster() -> None:
    s = Store()
    s.upsert({"metadata": {"name": "a", "namespace": "n"}})
    s.upsert({"metadata": {"name": "b"}})
    assert sorted(s.list_keys()) == ["b", "n/a"]
    assert s.get_by_name("a", "n") is not None
    old, new = s.upsert({"metadata": {"name": "b", "resourceVersion": "2"}})
    assert old == {"metadata": {"name": "b"}} and new["metadata"]["resourceVersion"] == "2"
    assert s.remove("b") is not None and s.remove("b") is None
    assert len(s) == 1


def test_equal_containers_are_stored_once_and_never_confused() -> None:
    p = Projection(["spec", "metadata.labels"])
    objs = [
        {"metadata": {"name": f"c{i}", "labels": {"app": "x"}}, "spec": {"modes": ["RWO"]}}
        for i in range(3)
    ]
    packed = [p.pack(o) for o in objs]
    spec = p.fields.index("spec")  # type: ignore[union-attr]
    assert packed[0][spec] is packed[1][spec] is packed[2][spec]
    assert all(p.unpack(x) == p.slim(o) for x, o in zip(packed, objs, strict=True))
    # A list and an object of the same strings, and 1 / 1.0 / true, stay what they were.
    odd = [
        {"metadata": {"name": "l"}, "spec": {"v": ["a", "b"]}},
        {"metadata": {"name": "d"}, "spec": {"v": {"a": "b"}}},
        {"metadata": {"name": "i"}, "spec": {"v": [1]}},
        {"metadata": {"name": "f"}, "spec": {"v": [1.0]}},
        {"metadata": {"name": "t"}, "spec": {"v": [True]}},
    ]
    thawed = [p.unpack(p.pack(o)) for o in odd]
    assert thawed == odd
    assert [type(t["spec"]["v"][0]) for t in thawed[2:]] == [int, float, bool]
    # Thawed copies are fresh: changing one changes neither the store nor the others.
    first = p.unpack(packed[0])
    first["spec"]["modes"].append("RWX")
    assert p.unpack(packed[1])["spec"]["modes"] == ["RWO"]


def test_shared_containers_no_object_uses_are_dropped_when_the_pool_is_full() -> None:
    p = Projection(["spec"])
    live = [p.pack({"metadata": {"name": f"n{i}"}, "spec": {"v": f"live{i}"}}) for i in range(10)]
    for i in range(3 * SHARE_LIMIT):  # claims churned: each spec unique, then gone
        p.pack({"metadata": {"name": f"g{i}"}, "spec": {"v": f"gone{i}"}})
    shared = p._containers
    assert len(shared) <= SHARE_LIMIT
    spec = p.fields.index("spec")  # type: ignore[union-attr]
    assert all(shared.get(x[spec]) is x[spec] for x in live)


def test_unpack_keeps_only_parents_of_present_leaves_and_fresh_containers() -> None:
    p = Projection(["metadata.annotations", "spec.csi.driver", "spec.claimRef.name", "status"])
    obj = {"metadata": {"name": "a", "annotations": {"k": "v"}}, "spec": {"csi": {"x": 1}}}
    packed = p.pack(obj)
    assert p.unpack(packed) == {"metadata": {"name": "a", "annotations": {"k": "v"}}}
    got = p.unpack(packed)
    got["metadata"]["annotations"]["k"] = "changed"
    assert p.unpack(packed)["metadata"]["annotations"] == {"k": "v"}


def test_containers_msgpack_cannot_hold_are_frozen_instead() -> None:
    p = Projection(["spec"])
    huge = 2**70
    obj = {"metadata": {"name": "a"}, "spec": {"size": [huge, 1.5, True, None]}}
    assert p.slim(obj) == obj
    assert Projection(None).slim(obj) == obj
    assert type(p.slim(obj)["spec"]["size"][2]) is bool


def test_copy_of_a_slim_object_is_fresh_and_equal() -> None:
    p = Projection(["metadata.finalizers", "spec"])
    slim = p.slim({"metadata": {"name": "a", "finalizers": ["f"]}, "spec": {"v": [1, 2.0]}})
    copy = p.copy(slim)
    assert copy == slim and copy is not slim
    copy["metadata"]["finalizers"].append("g")
    assert slim["metadata"]["finalizers"] == ["f"]
    odd = {"metadata": {"name": "b"}, "spec": {"v": 2**70}}
    assert p.copy(odd) == odd
