"""Shared informers: one list+watch and one store for every view, union of fields, replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    JsonDict,
)
from csi_sidecars.kube.sharedinformer import InformerHub
from csi_sidecars.kube.store import Projection, Store


def pv(name: str, driver: str = "d", phase: str = "Available") -> JsonDict:
    return {
        "metadata": {"name": name, "labels": {"tier": "gold"}, "annotations": {"a": "x" * 50}},
        "spec": {"csi": {"driver": driver, "volumeHandle": f"h-{name}"}, "claimRef": {"name": "c"}},
        "status": {"phase": phase},
    }


class Recorder:
    def __init__(self, inf: Informer) -> None:
        self.events: list[tuple[str, str]] = []
        self.seen: list[JsonDict] = []
        inf.add_handlers(
            on_add=lambda o: self._add("add", o),
            on_update=lambda old, new: self._add("update", new),
            on_delete=lambda o: self._add("delete", o),
        )

    def _add(self, kind: str, obj: JsonDict) -> None:
        self.events.append((kind, obj["metadata"]["name"]))
        self.seen.append(obj)

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.events if k == kind)


async def until(cond: Callable[[], bool], clock: FakeClock | None = None) -> None:
    async with asyncio.timeout(5):
        while not cond():
            if clock is not None:
                await clock.advance(1.0)
            else:
                await asyncio.sleep(0)


async def run(inf: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(inf.run())
    assert await inf.wait_for_sync(5)
    return task


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_two_views_of_one_resource_make_one_list_and_one_watch() -> None:
    fake = FakeKube()
    for i in range(5):
        await fake.create(PERSISTENT_VOLUMES, pv(f"pv{i}"))
    hub = InformerHub()
    a = hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec.csi.driver"])
    b = hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec.claimRef.name", "status.phase"])
    ra, rb = Recorder(a), Recorder(b)
    ta, tb = await run(a), await run(b)
    try:
        assert len(hub.bases()) == 1
        assert len(fake.actions_of("list", PERSISTENT_VOLUMES)) == 1
        await until(lambda: len(fake.actions_of("watch", PERSISTENT_VOLUMES)) >= 1)
        assert ra.names("add") == rb.names("add") == [f"pv{i}" for i in range(5)]
        assert a.store is b.store
        cached = a.store.get("pv1")
        assert cached is not None
        # the union of both views' fields, nothing else
        assert cached["spec"] == {"csi": {"driver": "d"}, "claimRef": {"name": "c"}}
        assert cached["status"] == {"phase": "Available"}
        assert "annotations" not in cached["metadata"]
        await fake.patch(
            PERSISTENT_VOLUMES, "pv1", {"status": {"phase": "Bound"}}, subresource="status"
        )
        await fake.delete(PERSISTENT_VOLUMES, "pv2")
        await until(lambda: len(ra.events) == 7 and len(rb.events) == 7)
        assert ra.events[5:] == rb.events[5:] == [("update", "pv1"), ("delete", "pv2")]
        # each view's handlers get their own copies
        ra.seen[-2]["status"]["phase"] = "mutated"
        assert rb.seen[-2]["status"]["phase"] == "Bound"
        assert a.store.get("pv1")["status"]["phase"] == "Bound"  # type: ignore[index]
        assert len(fake.actions_of("watch", PERSISTENT_VOLUMES)) == 1
    finally:
        await stop(ta, tb)
        await hub.close()


async def test_a_view_asking_for_whole_objects_makes_the_base_keep_them() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, pv("pv0"))
    hub = InformerHub()
    a = hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec.csi.driver"])
    hub.informer(fake, PERSISTENT_VOLUMES)
    assert hub.fields(PERSISTENT_VOLUMES) == [None]
    task = await run(a)
    try:
        cached = a.store.get("pv0")
        assert cached is not None and cached["metadata"]["annotations"] == {"a": "x" * 50}
    finally:
        await stop(task)
        await hub.close()


async def test_a_view_that_starts_later_gets_the_cache_replayed_and_nothing_before() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, pv("pv0"))
    hub = InformerHub()
    a = hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec.csi.driver"])
    b = hub.informer(fake, PERSISTENT_VOLUMES, fields=["status.phase"])
    ra, rb = Recorder(a), Recorder(b)
    ta = await run(a)
    tb: asyncio.Task[None] | None = None
    try:
        await fake.create(PERSISTENT_VOLUMES, pv("pv1"))
        await until(lambda: len(ra.events) == 2)
        assert rb.events == []  # b does not run (its role does not lead): it hears nothing
        assert not b.has_synced()
        tb = await run(b)
        assert rb.names("add") == ["pv0", "pv1"]
        assert len(fake.actions_of("list", PERSISTENT_VOLUMES)) == 1
        await fake.delete(PERSISTENT_VOLUMES, "pv0")
        await until(lambda: len(rb.events) == 3 and len(ra.events) == 3)
        await stop(tb)
        await fake.create(PERSISTENT_VOLUMES, pv("pv9"))
        await until(lambda: len(ra.events) == 4)
        assert len(rb.events) == 3  # stopped: hears nothing more
    finally:
        await stop(ta, *([tb] if tb else []))
        await hub.close()


async def test_different_selectors_or_resources_get_bases_of_their_own() -> None:
    fake = FakeKube()
    hub = InformerHub()
    hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec"])
    hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec"], label_selector="tier=gold")
    hub.informer(fake, PERSISTENT_VOLUME_CLAIMS, fields=["spec"])
    hub.informer(fake, PERSISTENT_VOLUME_CLAIMS, fields=["status"])
    assert len(hub.bases()) == 3
    assert sorted(map(str, hub.fields(PERSISTENT_VOLUME_CLAIMS))) == ["['spec', 'status']"]


async def test_indexes_are_merged_and_a_clashing_index_is_not_shared() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, pv("pv0", driver="d1"))

    def by_driver(obj: JsonDict) -> list[str]:
        return [obj["spec"]["csi"]["driver"]]

    def by_phase(obj: JsonDict) -> list[str]:
        return [obj["status"]["phase"]]

    def other_by_driver(obj: JsonDict) -> list[str]:
        return ["x"]

    hub = InformerHub()
    a = hub.informer(
        fake, PERSISTENT_VOLUMES, fields=["spec.csi.driver"], indexers={"driver": by_driver}
    )
    b = hub.informer(fake, PERSISTENT_VOLUMES, fields=["status.phase"], indexers={"p": by_phase})
    c = hub.informer(
        fake, PERSISTENT_VOLUMES, fields=["spec.csi.driver"], indexers={"driver": other_by_driver}
    )
    assert a.store is b.store and c.store is not a.store
    tasks = [await run(a), await run(b), await run(c)]
    try:
        assert [o["metadata"]["name"] for o in a.store.by_index("driver", "d1")] == ["pv0"]
        assert [o["metadata"]["name"] for o in b.store.by_index("p", "Available")] == ["pv0"]
        assert [o["metadata"]["name"] for o in c.store.by_index("driver", "x")] == ["pv0"]
        assert len(fake.actions_of("list", PERSISTENT_VOLUMES)) == 2
    finally:
        await stop(*tasks)
        await hub.close()


async def test_a_view_declared_after_the_base_started_with_new_fields_gets_its_own() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, pv("pv0"))
    hub = InformerHub()
    a = hub.informer(fake, PERSISTENT_VOLUMES, fields=["spec.csi.driver", "status.phase"])
    ta = await run(a)
    try:
        same = hub.informer(fake, PERSISTENT_VOLUMES, fields=["status.phase"])
        wider = hub.informer(fake, PERSISTENT_VOLUMES, fields=["metadata.labels"])
        assert same.store is a.store
        assert wider.store is not a.store
        tw = await run(wider)
        cached = wider.store.get("pv0")
        assert cached is not None and cached["metadata"]["labels"] == {"tier": "gold"}
        await stop(tw)
    finally:
        await stop(ta)
        await hub.close()


async def test_resync_is_per_view() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, pv("pv0"))
    clock = FakeClock()
    hub = InformerHub()
    a = hub.informer(
        fake, PERSISTENT_VOLUMES, fields=["status.phase"], resync_period=5, clock=clock
    )
    b = hub.informer(fake, PERSISTENT_VOLUMES, fields=["status.phase"])
    ra, rb = Recorder(a), Recorder(b)
    tasks = [await run(a), await run(b)]
    try:
        await until(lambda: len(ra.names("update")) >= 2, clock)
        assert rb.names("update") == []
    finally:
        await stop(*tasks)
        await hub.close()


def test_a_store_widens_only_while_empty() -> None:
    store = Store(Projection(["spec.a"]))
    store.widen(Projection(["spec.a", "spec.b"]), {"b": lambda o: [o["spec"]["b"]]})
    store.upsert({"metadata": {"name": "x"}, "spec": {"a": 1, "b": "2", "c": 3}})
    assert store.get("x")["spec"] == {"a": 1, "b": "2"}  # type: ignore[index]
    assert store.index_keys("b", "2") == ["x"]
    with pytest.raises(RuntimeError, match="cannot change its fields"):
        store.widen(Projection(None), {})
