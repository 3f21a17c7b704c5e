"""The in-memory fake behaves like the API server where roles depend on it."""

from __future__ import annotations

import asyncio

import pytest

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.labels import query_matches
from csi_sidecars.kube.patch import add_finalizer_patch, is_conflict, remove_finalizer_patch
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    VOLUME_ATTACHMENTS,
    ApiError,
)


async def test_create_get_and_resource_versions_increase() -> None:
    fake = FakeKube()
    a = await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a"}, "spec": {}})
    b = await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "b"}})
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert a["kind"] == "PersistentVolume" and a["metadata"]["uid"]
    got = await fake.get(PERSISTENT_VOLUMES, "a")
    assert got == a
    with pytest.raises(ApiError) as err:
        await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a"}})
    assert err.value.already_exists and not err.value.conflict
    with pytest.raises(ApiError) as err:
        await fake.get(PERSISTENT_VOLUMES, "zzz")
    assert err.value.not_found


async def test_namespaced_requires_namespace_and_lists_by_namespace() -> None:
    fake = FakeKube()
    with pytest.raises(ApiError):
        await fake.create(PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "c"}})
    await fake.create(PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "c", "namespace": "n1"}})
    await fake.create(PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "c"}}, "n2")
    assert len((await fake.list(PERSISTENT_VOLUME_CLAIMS))["items"]) == 2
    assert len((await fake.list(PERSISTENT_VOLUME_CLAIMS, "n1"))["items"]) == 1


async def test_replace_with_stale_version_conflicts() -> None:
    fake = FakeKube()
    obj = await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a"}, "spec": {"x": 1}})
    obj["spec"]["x"] = 2
    new = await fake.replace(PERSISTENT_VOLUMES, obj)
    assert new["metadata"]["generation"] == 2
    obj["spec"]["x"] = 3  # obj still has the old resourceVersion
    with pytest.raises(ApiError) as err:
        await fake.replace(PERSISTENT_VOLUMES, obj)
    assert err.value.conflict and is_conflict(err.value)


async def test_finalizers_block_deletion_until_removed() -> None:
    fake = FakeKube()
    obj = await fake.create(
        VOLUME_ATTACHMENTS, {"metadata": {"name": "va", "finalizers": ["f1", "f2"]}}
    )
    deleted = await fake.delete(VOLUME_ATTACHMENTS, "va")
    assert deleted is not None and deleted["metadata"]["deletionTimestamp"]
    still = await fake.get(VOLUME_ATTACHMENTS, "va")
    patch = remove_finalizer_patch(still, "f1")
    assert patch is not None
    await fake.patch(VOLUME_ATTACHMENTS, "va", patch, patch_type="json")
    assert (await fake.get(VOLUME_ATTACHMENTS, "va"))["metadata"]["finalizers"] == ["f2"]
    await fake.patch(VOLUME_ATTACHMENTS, "va", {"metadata": {"finalizers": None}})
    assert fake.peek(VOLUME_ATTACHMENTS, "va") is None
    assert obj["metadata"]["uid"]


async def test_finalizer_json_patch_test_fails_on_concurrent_change() -> None:
    fake = FakeKube()
    await fake.create(VOLUME_ATTACHMENTS, {"metadata": {"name": "va", "finalizers": ["a"]}})
    seen = await fake.get(VOLUME_ATTACHMENTS, "va")
    # Someone else adds a finalizer meanwhile.
    await fake.patch(VOLUME_ATTACHMENTS, "va", {"metadata": {"finalizers": ["a", "other"]}})
    patch = add_finalizer_patch(seen, "mine")
    assert patch is not None
    with pytest.raises(ApiError) as err:
        await fake.patch(VOLUME_ATTACHMENTS, "va", patch, patch_type="json")
    assert is_conflict(err.value)
    fresh = await fake.get(VOLUME_ATTACHMENTS, "va")
    await fake.patch(
        VOLUME_ATTACHMENTS, "va", add_finalizer_patch(fresh, "mine"), patch_type="json"
    )
    assert fake.peek(VOLUME_ATTACHMENTS, "va")["metadata"]["finalizers"] == ["a", "other", "mine"]  # type: ignore[index]


async def test_add_first_finalizer_tests_the_absent_list() -> None:
    fake = FakeKube()
    seen = await fake.create(VOLUME_ATTACHMENTS, {"metadata": {"name": "va"}})
    # An unrelated change does not make the guarded add fail ...
    await fake.patch(VOLUME_ATTACHMENTS, "va", {"metadata": {"labels": {"x": "y"}}})
    unrelated = await fake.get(VOLUME_ATTACHMENTS, "va")
    assert unrelated["metadata"].get("finalizers") is None
    # ... another writer's first finalizer does.
    await fake.patch(VOLUME_ATTACHMENTS, "va", {"metadata": {"finalizers": ["theirs"]}})
    with pytest.raises(ApiError) as err:
        await fake.patch(
            VOLUME_ATTACHMENTS, "va", add_finalizer_patch(seen, "mine"), patch_type="json"
        )
    assert is_conflict(err.value)
    assert add_finalizer_patch({"metadata": {"finalizers": ["mine"]}}, "mine") is None
    assert remove_finalizer_patch({"metadata": {}}, "mine") is None


async def test_status_subresource_separation() -> None:
    fake = FakeKube()
    await fake.create(
        PERSISTENT_VOLUMES, {"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"phase": "P"}}
    )
    await fake.patch(PERSISTENT_VOLUMES, "a", {"spec": {"x": 2}, "status": {"phase": "IGNORED"}})
    obj = fake.peek(PERSISTENT_VOLUMES, "a")
    assert obj is not None and obj["spec"]["x"] == 2 and obj["status"]["phase"] == "P"
    await fake.patch(
        PERSISTENT_VOLUMES,
        "a",
        {"spec": {"x": 9}, "status": {"phase": "Bound"}},
        subresource="status",
    )
    obj = fake.peek(PERSISTENT_VOLUMES, "a")
    assert obj is not None and obj["spec"]["x"] == 2 and obj["status"]["phase"] == "Bound"


async def test_merge_patch_with_resource_version_is_optimistic() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a"}})
    with pytest.raises(ApiError) as err:
        await fake.patch(
            PERSISTENT_VOLUMES, "a", {"metadata": {"resourceVersion": "0"}, "spec": {}}
        )
    assert err.value.conflict


async def test_delete_preconditions() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a"}})
    with pytest.raises(ApiError) as err:
        await fake.delete(PERSISTENT_VOLUMES, "a", uid="wrong")
    assert err.value.conflict
    assert fake.peek(PERSISTENT_VOLUMES, "a") is not None


async def test_watch_replays_history_and_gone_after_compact() -> None:
    fake = FakeKube()
    a = await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a"}})
    rv = a["metadata"]["resourceVersion"]
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "b"}})
    await fake.create(VOLUME_ATTACHMENTS, {"metadata": {"name": "not-a-pv"}})
    await fake.delete(PERSISTENT_VOLUMES, "a")
    stream = fake.watch(PERSISTENT_VOLUMES, resource_version=rv)
    got = [await anext(stream), await anext(stream)]
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    nxt = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "c"}})
    assert (await asyncio.wait_for(nxt, 5)).object["metadata"]["name"] == "c"
    await stream.aclose()
    fake.compact()
    with pytest.raises(ApiError) as err:
        await anext(fake.watch(PERSISTENT_VOLUMES, resource_version=rv))
    assert err.value.gone


async def test_selectors_and_injection() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "a", "labels": {"k": "v"}}})
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "b"}})
    page = await fake.list(PERSISTENT_VOLUMES, label_selector="k=v")
    assert [o["metadata"]["name"] for o in page["items"]] == ["a"]
    page = await fake.list(PERSISTENT_VOLUMES, field_selector="metadata.name=b")
    assert [o["metadata"]["name"] for o in page["items"]] == ["b"]
    assert query_matches("!k", {}) and not query_matches("k!=v", {"k": "v"})
    fake.inject("get", ApiError(500, "InternalError", "x"), resource=PERSISTENT_VOLUMES, name="a")
    with pytest.raises(ApiError):
        await fake.get(PERSISTENT_VOLUMES, "a")
    assert (await fake.get(PERSISTENT_VOLUMES, "a"))["metadata"]["name"] == "a"
    assert [a.verb for a in fake.actions_of("get")] == ["get", "get"]


async def test_apply_creates_then_merges() -> None:
    fake = FakeKube()
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "a"},
        "spec": {"x": 1},
    }
    await fake.patch(PERSISTENT_VOLUMES, "a", body, patch_type="apply", field_manager="m")
    body["spec"] = {"y": 2}
    await fake.patch(PERSISTENT_VOLUMES, "a", body, patch_type="apply", field_manager="m")
    assert fake.peek(PERSISTENT_VOLUMES, "a")["spec"] == {"x": 1, "y": 2}  # type: ignore[index]


async def test_pvc_status_writes_keep_annotation_changes_other_kinds_do_not() -> None:
    fake = FakeKube()
    pvc = {"metadata": {"name": "c", "annotations": {"a": "1"}}, "spec": {"x": 1}}
    await fake.create(PERSISTENT_VOLUME_CLAIMS, pvc, "ns")
    await fake.patch(
        PERSISTENT_VOLUME_CLAIMS,
        "c",
        {"metadata": {"annotations": {"a": None, "b": "2"}}, "spec": {"x": 2}, "status": {"p": 1}},
        "ns",
        subresource="status",
    )
    got = fake.peek(PERSISTENT_VOLUME_CLAIMS, "c", "ns")
    assert got is not None
    assert got["metadata"]["annotations"] == {"b": "2"}
    assert got["spec"] == {"x": 1} and got["status"] == {"p": 1}
    await fake.create(PERSISTENT_VOLUMES, {"metadata": {"name": "v", "annotations": {"a": "1"}}})
    await fake.patch(
        PERSISTENT_VOLUMES,
        "v",
        {"metadata": {"annotations": {"a": "9"}}, "status": {"phase": "Bound"}},
        subresource="status",
    )
    pv = fake.peek(PERSISTENT_VOLUMES, "v")
    assert pv is not None and pv["metadata"]["annotations"] == {"a": "1"}
