"""The playground driver's state machine: CSI rules, idempotency and persistence."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from csi_sidecars.playground.driver.core import VolumeCap
from csi_sidecars.playground.driver.model import CsiError
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY, DriverOptions
from csi_sidecars.playground.driver.state import DriverState
from csi_sidecars.playground.driver.store import StateStore, load_state

Code = grpc.StatusCode
GIB = 1 << 30
MOUNT = VolumeCap("mount", 1)
BLOCK = VolumeCap("block", 1)
MULTI = VolumeCap("mount", 5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    store: StateStore | None = None, clock: Clock | None = None, **opts: object
) -> DriverState:
    opts.setdefault("node_id", "node-1")
    opts.setdefault("statedir", None)
    return DriverState(DriverOptions(**opts), store, clock or Clock())  # type: ignore[arg-type]


def code_of(fn: object, *args: object, **kwargs: object) -> Code:
    with pytest.raises(CsiError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value.code


# -- CreateVolume / DeleteVolume ------------------------------------------------------------------


def test_create_volume_is_idempotent_by_name() -> None:
    st = make()
    first = st.create_volume("pvc-1", [MOUNT], required_bytes=GIB, parameters={"a": "b"})
    again = st.create_volume("pvc-1", [MOUNT], required_bytes=GIB, parameters={"a": "b"})
    assert again.volume_id == first.volume_id
    assert len(st.data.volumes) == 1
    assert first.topology == [{TOPOLOGY_KEY: "node-1"}]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"required_bytes": 2 * GIB}, Code.ALREADY_EXISTS),
        ({"required_bytes": GIB, "parameters": {"a": "other"}}, Code.ALREADY_EXISTS),
        ({"required_bytes": GIB, "limit_bytes": GIB // 2}, Code.INVALID_ARGUMENT),
    ],
)
def test_create_volume_incompatible_with_existing(kwargs: dict[str, object], code: Code) -> None:
    st = make()
    st.create_volume("pvc-1", [MOUNT], required_bytes=GIB, parameters={"a": "b"})
    kwargs.setdefault("parameters", {"a": "b"})
    assert code_of(st.create_volume, "pvc-1", [MOUNT], **kwargs) == code


def test_create_volume_other_access_type_clashes() -> None:
    st = make()
    st.create_volume("pvc-1", [MOUNT], required_bytes=GIB)
    assert code_of(st.create_volume, "pvc-1", [BLOCK], required_bytes=GIB) == Code.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("name", "caps", "kwargs", "code"),
    [
        ("", [MOUNT], {}, Code.INVALID_ARGUMENT),
        ("v", [], {}, Code.INVALID_ARGUMENT),
        ("v", [VolumeCap("", 1)], {}, Code.INVALID_ARGUMENT),
        ("v", [MOUNT, BLOCK], {}, Code.INVALID_ARGUMENT),
        ("v", [MOUNT], {"required_bytes": -1}, Code.INVALID_ARGUMENT),
        ("v", [MOUNT], {"required_bytes": 2, "limit_bytes": 1}, Code.INVALID_ARGUMENT),
        ("v", [MOUNT], {"required_bytes": (1 << 40) + 1}, Code.OUT_OF_RANGE),
        ("v", [MOUNT], {"parameters": {"kind": "fast"}}, Code.INVALID_ARGUMENT),
        ("v", [MOUNT], {"source": ("snapshot", "nope")}, Code.NOT_FOUND),
        ("v", [MOUNT], {"source": ("volume", "nope")}, Code.NOT_FOUND),
        ("v", [MOUNT], {"mutable_parameters": {"x": "y"}}, Code.INVALID_ARGUMENT),
    ],
)
def test_create_volume_errors(
    name: str, caps: list[VolumeCap], kwargs: dict[str, object], code: Code
) -> None:
    st = make()
    assert code_of(st.create_volume, name, caps, **kwargs) == code
    assert st.data.volumes == {}


def test_create_volume_from_sources_records_them_and_grows_to_source_size() -> None:
    st = make()
    src = st.create_volume("src", [MOUNT], required_bytes=2 * GIB)
    snap = st.create_snapshot("snap", src.volume_id)
    from_snap = st.create_volume(
        "a", [MOUNT], required_bytes=GIB, source=("snapshot", snap.snapshot_id)
    )
    assert from_snap.source_snapshot_id == snap.snapshot_id
    assert from_snap.capacity_bytes == 2 * GIB
    clone = st.create_volume("b", [MOUNT], required_bytes=3 * GIB, source=("volume", src.volume_id))
    assert clone.source_volume_id == src.volume_id
    assert clone.capacity_bytes == 3 * GIB
    too_small = ("volume", src.volume_id)
    assert (
        code_of(
            st.create_volume, "c", [MOUNT], required_bytes=GIB, limit_bytes=GIB, source=too_small
        )
        == Code.OUT_OF_RANGE
    )
    other = ("volume", clone.volume_id)
    assert code_of(st.create_volume, "b", [MOUNT], required_bytes=3 * GIB, source=other) == (
        Code.ALREADY_EXISTS
    )


def test_capacity_kinds_are_tracked() -> None:
    st = make(capacity={"fast": 3 * GIB, "slow": 10 * GIB})
    assert st.get_capacity({"kind": "fast"}) == (3 * GIB, 3 * GIB)
    vol = st.create_volume("a", [MOUNT], required_bytes=2 * GIB, parameters={"kind": "fast"})
    assert vol.kind == "fast"
    assert st.get_capacity({"kind": "fast"}) == (GIB, GIB)
    assert st.get_capacity({}) == (0, 0)
    big = {"kind": "fast"}
    assert code_of(st.create_volume, "b", [MOUNT], required_bytes=2 * GIB, parameters=big) == (
        Code.RESOURCE_EXHAUSTED
    )
    # Without a kind, one with enough room is picked.
    assert st.create_volume("c", [MOUNT], required_bytes=5 * GIB).kind == "slow"
    st.delete_volume(vol.volume_id)
    assert st.get_capacity({"kind": "fast"})[0] == 3 * GIB


def test_capacity_is_per_node_when_standing_in_for_several() -> None:
    st = make(
        capacity={"local": 4 * GIB},
        node_capacity={"node-2": {"local": 10 * GIB}, "node-3": {"local": 8 * GIB}},
        known_nodes=["node-2", "node-3"],
    )
    local = {"kind": "local"}
    assert st.get_capacity(local, "node-1") == (4 * GIB, 4 * GIB)
    assert st.get_capacity(local, "node-2") == (10 * GIB, 10 * GIB)
    assert st.get_capacity(local, "nowhere") == (0, 0)
    req = [{TOPOLOGY_KEY: "node-2"}]
    vol = st.create_volume("a", [MOUNT], required_bytes=6 * GIB, parameters=local, requisite=req)
    assert vol.topology == [{TOPOLOGY_KEY: "node-2"}]
    assert st.get_capacity(local, "node-2")[0] == 4 * GIB
    assert st.get_capacity(local, "node-1")[0] == 4 * GIB  # another node's space is its own
    # A requisite of several nodes lands on the first one with room.
    everywhere = [{TOPOLOGY_KEY: n} for n in ("node-1", "node-2", "node-3")]
    roomy = st.create_volume(
        "b", [MOUNT], required_bytes=5 * GIB, parameters=local, requisite=everywhere
    )
    assert roomy.topology == [{TOPOLOGY_KEY: "node-3"}]
    assert (
        code_of(
            st.create_volume, "c", [MOUNT], required_bytes=5 * GIB, parameters=local, requisite=req
        )
        == Code.RESOURCE_EXHAUSTED
    )


def test_get_capacity_without_tracking_is_the_max_volume_size() -> None:
    assert make(max_volume_size=5 * GIB).get_capacity({}) == (5 * GIB, 5 * GIB)


def test_delete_volume_unknown_is_ok_and_empty_id_is_invalid() -> None:
    st = make()
    st.delete_volume("does-not-exist")
    assert code_of(st.delete_volume, "") == Code.INVALID_ARGUMENT


def test_delete_volume_in_use_only_refused_with_lifecycle_checks() -> None:
    lax = make(enable_attach=True)
    vol = lax.create_volume("a", [MOUNT])
    lax.controller_publish(vol.volume_id, "node-1", MOUNT)
    lax.delete_volume(vol.volume_id)
    assert lax.data.volumes == {}

    strict = make(enable_attach=True, check_volume_lifecycle=True)
    vol = strict.create_volume("a", [MOUNT])
    strict.controller_publish(vol.volume_id, "node-1", MOUNT)
    assert code_of(strict.delete_volume, vol.volume_id) == Code.FAILED_PRECONDITION
    strict.controller_unpublish(vol.volume_id, "node-1")
    strict.delete_volume(vol.volume_id)


def test_removed_capability_makes_the_call_unimplemented() -> None:
    st = make(remove_capabilities=["CREATE_DELETE_VOLUME"])
    assert code_of(st.create_volume, "a", [MOUNT]) == Code.UNIMPLEMENTED
    assert code_of(make().controller_publish, "v", "node-1", MOUNT) == Code.UNIMPLEMENTED


# -- ControllerPublish / Unpublish ----------------------------------------------------------------


def test_controller_publish_rules() -> None:
    st = make(enable_attach=True, known_nodes=["node-2"])
    vol = st.create_volume("a", [MOUNT]).volume_id
    assert code_of(st.controller_publish, "", "node-1", MOUNT) == Code.INVALID_ARGUMENT
    assert code_of(st.controller_publish, vol, "", MOUNT) == Code.INVALID_ARGUMENT
    assert code_of(st.controller_publish, vol, "node-1", None) == Code.INVALID_ARGUMENT
    assert code_of(st.controller_publish, "nope", "node-1", MOUNT) == Code.NOT_FOUND
    assert code_of(st.controller_publish, vol, "node-9", MOUNT) == Code.NOT_FOUND

    assert st.controller_publish(vol, "node-1", MOUNT) == {}
    assert st.controller_publish(vol, "node-1", MOUNT) == {}  # idempotent
    assert code_of(st.controller_publish, vol, "node-1", MOUNT, True) == Code.ALREADY_EXISTS
    assert code_of(st.controller_publish, vol, "node-2", MOUNT) == Code.FAILED_PRECONDITION
    st.controller_publish(vol, "node-2", MULTI)  # multi-node access mode is fine
    assert st.data.volumes[vol].attached == {"node-1": False, "node-2": False}
    assert st.published_nodes(st.data.volumes[vol]) == ["node-1", "node-2"]


def test_controller_unpublish_rules() -> None:
    st = make(enable_attach=True, known_nodes=["node-2"])
    vol = st.create_volume("a", [MULTI]).volume_id
    st.controller_publish(vol, "node-1", MULTI)
    st.controller_publish(vol, "node-2", MULTI)
    st.controller_unpublish(vol, "node-1")
    st.controller_unpublish(vol, "node-1")  # not attached any more: still OK
    assert st.data.volumes[vol].attached == {"node-2": False}
    st.controller_unpublish("unknown-volume", "node-1")
    assert code_of(st.controller_unpublish, vol, "node-9") == Code.NOT_FOUND
    assert code_of(st.controller_unpublish, "", "node-1") == Code.INVALID_ARGUMENT
    st.controller_unpublish(vol, "")  # every node
    assert st.data.volumes[vol].attached == {}


def test_attach_limit() -> None:
    st = make(enable_attach=True, max_volumes_per_node=2)
    ids = [st.create_volume(f"v{i}", [MOUNT]).volume_id for i in range(3)]
    st.controller_publish(ids[0], "node-1", MOUNT)
    st.controller_publish(ids[1], "node-1", MOUNT)
    assert code_of(st.controller_publish, ids[2], "node-1", MOUNT) == Code.RESOURCE_EXHAUSTED
    assert st.node_info()[1] == 2


# -- List, expand, modify, validate ---------------------------------------------------------------


def test_list_volumes_pagination_survives_deletes() -> None:
    st = make()
    ids = sorted(st.create_volume(f"v{i}", [MOUNT]).volume_id for i in range(5))
    page1, token = st.list_volumes(2)
    assert [v.volume_id for v in page1] == ids[:2]
    assert token
    st.delete_volume(ids[2])
    page2, token2 = st.list_volumes(2, token)
    assert [v.volume_id for v in page2] == ids[3:5]
    assert token2 == ""
    assert code_of(st.list_volumes, 0, "invalid-token") == Code.ABORTED
    assert code_of(st.list_volumes, -1) == Code.INVALID_ARGUMENT
    assert len(st.list_volumes()[0]) == 4


def test_expand_volume() -> None:
    st = make(max_volume_size=10 * GIB)
    vol = st.create_volume("a", [MOUNT], required_bytes=GIB).volume_id
    assert st.expand_volume(vol, 2 * GIB) == (2 * GIB, True)
    assert st.expand_volume(vol, GIB) == (2 * GIB, True)  # never shrinks
    assert code_of(st.expand_volume, vol, 11 * GIB) == Code.OUT_OF_RANGE
    assert code_of(st.expand_volume, "nope", GIB) == Code.NOT_FOUND
    assert code_of(st.expand_volume, vol, 0) == Code.INVALID_ARGUMENT
    no_node = make(disable_node_expansion=True)
    vid = no_node.create_volume("x", [MOUNT]).volume_id
    assert no_node.expand_volume(vid, GIB) == (GIB, False)
    assert code_of(make(disable_controller_expansion=True).expand_volume, vid, GIB) == (
        Code.UNIMPLEMENTED
    )


def test_offline_expansion_refuses_volumes_in_use() -> None:
    st = make(offline_expansion=True, enable_attach=True)
    assert st.caps.values("expansion") == [2]  # OFFLINE
    vol = st.create_volume("a", [MOUNT], required_bytes=GIB).volume_id
    st.data.volumes[vol].attached["node-1"] = False
    assert code_of(st.expand_volume, vol, 2 * GIB) == Code.FAILED_PRECONDITION
    st.data.volumes[vol].attached.clear()
    assert st.expand_volume(vol, 2 * GIB) == (2 * GIB, True)
    assert make().caps.values("expansion") == []


def test_modify_volume() -> None:
    st = make(enable_controller_modify_volume=True, accepted_mutable_parameter_names=["iops"])
    vol = st.create_volume("a", [MOUNT], mutable_parameters={"iops": "1"}).volume_id
    st.modify_volume(vol, {"iops": "5"})
    assert st.data.volumes[vol].mutable_parameters == {"iops": "5"}
    assert code_of(st.modify_volume, vol, {"other": "1"}) == Code.INVALID_ARGUMENT
    assert code_of(st.modify_volume, vol, {}) == Code.INVALID_ARGUMENT
    assert code_of(st.modify_volume, "nope", {"iops": "1"}) == Code.NOT_FOUND
    assert code_of(make().modify_volume, vol, {"iops": "1"}) == Code.UNIMPLEMENTED


def test_validate_volume_capabilities() -> None:
    st = make()
    vol = st.create_volume("a", [MOUNT]).volume_id
    assert st.validate_volume_capabilities(vol, [MOUNT]) == (True, "")
    assert st.validate_volume_capabilities(vol, [BLOCK])[0] is False
    assert code_of(st.validate_volume_capabilities, "nope", [MOUNT]) == Code.NOT_FOUND
    assert code_of(st.validate_volume_capabilities, vol, []) == Code.INVALID_ARGUMENT


def test_condition_is_scriptable_and_follows_the_volume_directory(tmp_path: Path) -> None:
    st = make(store=StateStore(tmp_path))
    vol = st.create_volume("a", [MOUNT])
    assert st.condition(vol).abnormal is False
    st.set_condition(vol.volume_id, True, "disk on fire")
    assert st.condition(vol).message == "disk on fire"
    st.set_condition(vol.volume_id, False)
    (tmp_path / "volumes" / vol.volume_id).rmdir()
    assert st.condition(vol).abnormal is True


# -- Snapshots ------------------------------------------------------------------------------------


def test_snapshots() -> None:
    clock = Clock()
    st = make(clock=clock, snapshot_ready_delay=5.0)
    vol = st.create_volume("a", [MOUNT], required_bytes=GIB).volume_id
    other = st.create_volume("b", [MOUNT]).volume_id
    snap = st.create_snapshot("s1", vol)
    assert snap.size_bytes == GIB
    assert st.create_snapshot("s1", vol).snapshot_id == snap.snapshot_id
    assert code_of(st.create_snapshot, "s1", other) == Code.ALREADY_EXISTS
    assert code_of(st.create_snapshot, "s2", "nope") == Code.NOT_FOUND
    assert code_of(st.create_snapshot, "", vol) == Code.INVALID_ARGUMENT
    assert not snap.ready(clock.now)
    clock.now += 5
    assert snap.ready(clock.now)

    st.create_snapshot("s2", other)
    assert [s.name for s in st.list_snapshots(source_volume_id=vol)[0]] == ["s1"]
    assert [s.name for s in st.list_snapshots(snapshot_id=snap.snapshot_id)[0]] == ["s1"]
    assert st.list_snapshots(snapshot_id="nope")[0] == []
    first, token = st.list_snapshots(max_entries=1)
    rest, end = st.list_snapshots(max_entries=1, starting_token=token)
    assert {first[0].name, rest[0].name} == {"s1", "s2"}
    assert end == ""
    assert code_of(st.list_snapshots, 0, "bogus") == Code.ABORTED

    assert st.get_snapshot(snap.snapshot_id) is snap
    assert code_of(st.get_snapshot, "nope") == Code.NOT_FOUND
    st.delete_snapshot(snap.snapshot_id)
    st.delete_snapshot(snap.snapshot_id)
    assert code_of(st.delete_snapshot, "") == Code.INVALID_ARGUMENT


def test_group_snapshots() -> None:
    st = make()
    a = st.create_volume("a", [MOUNT]).volume_id
    b = st.create_volume("b", [MOUNT]).volume_id
    group = st.create_group_snapshot("g", [a, b])
    assert st.create_group_snapshot("g", [b, a]) is group
    assert code_of(st.create_group_snapshot, "g", [a]) == Code.ALREADY_EXISTS
    assert code_of(st.create_group_snapshot, "h", [a, "nope"]) == Code.NOT_FOUND
    assert "h" not in {s.name for s in st.data.snapshots.values()}
    member = group.snapshot_ids[0]
    assert st.data.snapshots[member].group_snapshot_id == group.group_snapshot_id
    assert code_of(st.delete_snapshot, member) == Code.INVALID_ARGUMENT
    assert st.get_group_snapshot(group.group_snapshot_id, []) is group
    assert code_of(st.get_group_snapshot, group.group_snapshot_id, ["x"]) == Code.INVALID_ARGUMENT
    assert code_of(st.get_group_snapshot, "nope", []) == Code.NOT_FOUND
    st.delete_group_snapshot(group.group_snapshot_id, list(group.snapshot_ids))
    st.delete_group_snapshot(group.group_snapshot_id, [])
    assert st.data.snapshots == {}
    assert st.data.group_snapshots == {}


# -- Node -----------------------------------------------------------------------------------------


def test_node_lifecycle_creates_and_removes_the_target(tmp_path: Path) -> None:
    st = make(enable_attach=True)
    vol = st.create_volume("a", [MOUNT]).volume_id
    staging, target = str(tmp_path / "staging"), str(tmp_path / "pods" / "target")
    assert code_of(st.node_stage, vol, staging, MOUNT) == Code.FAILED_PRECONDITION  # not attached
    st.controller_publish(vol, "node-1", MOUNT)
    st.node_stage(vol, staging, MOUNT)
    st.node_stage(vol, staging, MOUNT)
    assert code_of(st.node_stage, vol, staging + "2", MOUNT) == Code.FAILED_PRECONDITION

    publish = st.node_publish
    assert code_of(publish, vol, target, MOUNT) == Code.FAILED_PRECONDITION  # no staging path
    assert code_of(publish, vol, target, MOUNT, staging_target_path="/x") == Code.INVALID_ARGUMENT
    assert code_of(publish, vol, target, BLOCK, staging_target_path=staging) == (
        Code.INVALID_ARGUMENT
    )
    publish(vol, target, MOUNT, staging_target_path=staging)
    publish(vol, target, MOUNT, staging_target_path=staging)
    assert Path(target).is_dir()
    assert code_of(publish, vol, target, MOUNT, staging_target_path=staging, readonly=True) == (
        Code.ALREADY_EXISTS
    )
    assert code_of(st.node_unstage, vol, staging) == Code.FAILED_PRECONDITION  # still published

    _, used, cond = st.node_volume_stats(vol, target)
    assert (used, cond.abnormal) == (0, False)
    assert code_of(st.node_volume_stats, vol, str(tmp_path / "gone")) == Code.NOT_FOUND
    assert st.node_expand(vol, target, 2 * GIB) == 2 * GIB

    st.node_unpublish(vol, target)
    assert not Path(target).exists()
    st.node_unpublish(vol, target)
    st.node_unstage(vol, staging)
    st.node_unstage(vol, staging)
    assert code_of(st.node_unpublish, "nope", target) == Code.NOT_FOUND
    assert st.data.volumes[vol].staged == []


def test_single_node_single_writer_conflict(tmp_path: Path) -> None:
    st = make(remove_capabilities=["node:STAGE_UNSTAGE_VOLUME"])
    sn_sw = VolumeCap("mount", 6)
    vol = st.create_volume("a", [sn_sw]).volume_id
    st.node_publish(vol, str(tmp_path / "t1"), sn_sw)
    assert code_of(st.node_publish, vol, str(tmp_path / "t2"), sn_sw) == Code.FAILED_PRECONDITION


def test_ephemeral_volume_lives_while_published(tmp_path: Path) -> None:
    st = make()
    target = str(tmp_path / "t")
    st.node_publish("eph-1", target, MOUNT, volume_context={"csi.storage.k8s.io/ephemeral": "true"})
    assert st.data.volumes["eph-1"].ephemeral
    st.node_unpublish("eph-1", target)
    assert "eph-1" not in st.data.volumes


def test_node_info_topology() -> None:
    assert make().node_info() == ("node-1", 0, {TOPOLOGY_KEY: "node-1"})
    assert make(enable_topology=False, attach_limit=7).node_info() == ("node-1", 7, {})
    assert 1 <= make(attach_limit=-1).node_info()[1] <= 10


# -- Persistence ----------------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path) -> None:
    st = make(store=StateStore(tmp_path), enable_attach=True)
    vol = st.create_volume("a", [MOUNT], required_bytes=GIB).volume_id
    st.controller_publish(vol, "node-1", MOUNT, True)
    snap = st.create_snapshot("s", vol).snapshot_id
    assert (tmp_path / "volumes" / vol).is_dir()
    assert (tmp_path / "snapshots" / f"{snap}.snap").is_file()

    again = make(store=StateStore(tmp_path), enable_attach=True)
    assert again.create_volume("a", [MOUNT], required_bytes=GIB).volume_id == vol
    assert again.data.volumes[vol].attached == {"node-1": True}
    assert again.data.snapshots[snap].source_volume_id == vol
    assert load_state(tmp_path).publications() == [
        {"volume_id": vol, "node_id": "node-1", "readonly": True}
    ]
    again.delete_snapshot(snap)
    again.delete_volume(vol)
    assert not (tmp_path / "volumes" / vol).exists()
    assert load_state(tmp_path).volumes == {}


def test_topology_is_this_node_unless_known_nodes_are_configured() -> None:
    want = [{TOPOLOGY_KEY: "node-3"}]
    plain = make()
    assert plain.create_volume("a", [MOUNT], requisite=want).topology == [{TOPOLOGY_KEY: "node-1"}]

    multi = make(known_nodes=["node-2", "node-3"])
    pref = [{TOPOLOGY_KEY: "node-2"}]
    assert multi.create_volume("a", [MOUNT], requisite=want).topology == want
    assert multi.create_volume("b", [MOUNT], requisite=want, preferred=pref).topology == pref
    unknown = [{TOPOLOGY_KEY: "node-9"}]
    assert code_of(multi.create_volume, "c", [MOUNT], requisite=unknown) == (
        Code.RESOURCE_EXHAUSTED
    )
    assert make(enable_topology=False).create_volume("d", [MOUNT], requisite=want).topology == []


def test_any_node_is_known_with_a_star() -> None:
    st = make(enable_attach=True, known_nodes=["*"])
    vol = st.create_volume("a", [MULTI], requisite=[{TOPOLOGY_KEY: "node-7"}])
    assert vol.topology == [{TOPOLOGY_KEY: "node-7"}]
    st.controller_publish(vol.volume_id, "node-7", MULTI)
    assert st.data.volumes[vol.volume_id].attached == {"node-7": False}
