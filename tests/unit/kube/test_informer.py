"""Informer against the in-memory fake: list, watch, reconnect, 410 re-list, resync, indexes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, VOLUME_ATTACHMENTS, ApiError, JsonDict

FIELDS = ["metadata.uid", "spec.csi.driver", "status.phase"]


def pv(name: str, driver: str = "d", phase: str = "Available") -> JsonDict:
    return {
        "metadata": {"name": name, "annotations": {"big": "x" * 100}},
        "spec": {"csi": {"driver": driver, "volumeHandle": name}, "capacity": {"storage": "1Gi"}},
        "status": {"phase": phase},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def attach(self, inf: Informer) -> None:
        inf.add_handlers(
            on_add=lambda o: self.events.append(("add", o["metadata"]["name"])),
            on_update=lambda old, new: self.events.append(("update", new["metadata"]["name"])),
            on_delete=lambda o: self.events.append(("delete", o["metadata"]["name"])),
        )


async def until(cond: Callable[[], bool], clock: FakeClock | None = None) -> None:
    async with asyncio.timeout(5):
        while not cond():
            if clock is not None:
                await clock.advance(1.0)
            else:
                await asyncio.sleep(0)


async def start(inf: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(inf.run())
    assert await inf.wait_for_sync(5)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_initial_paged_list_then_watch_events_and_slim_objects() -> None:
    fake = FakeKube()
    for i in range(7):
        await fake.create(PERSISTENT_VOLUMES, pv(f"pv{i}"))
    inf = Informer(fake, PERSISTENT_VOLUMES, fields=FIELDS, page_size=3)
    rec = Recorder()
    rec.attach(inf)
    assert not inf.has_synced()
    task = await start(inf)
    assert inf.has_synced()
    assert len(fake.actions_of("list")) == 3  # 3 + 3 + 1
    assert sorted(n for k, n in rec.events if k == "add") == [f"pv{i}" for i in range(7)]
    cached = inf.store.get("pv1")
    assert cached is not None
    assert cached["spec"] == {"csi": {"driver": "d"}}
    assert "annotations" not in cached["metadata"]
    assert cached["metadata"]["uid"]
    await fake.create(PERSISTENT_VOLUMES, pv("new"))
    await fake.patch(
        PERSISTENT_VOLUMES, "pv1", {"status": {"phase": "Bound"}}, subresource="status"
    )
    await fake.delete(PERSISTENT_VOLUMES, "pv2")
    await until(lambda: len(rec.events) == 10)
    assert rec.events[7:] == [("add", "new"), ("update", "pv1"), ("delete", "pv2")]
    assert inf.store.get("pv1")["status"]["phase"] == "Bound"  # type: ignore[index]
    assert "pv2" not in inf.store
    await stop(task)


async def test_mutating_a_handler_object_does_not_touch_the_cache() -> None:
    fake = FakeKube()
    await fake.create(PERSISTENT_VOLUMES, pv("a"))
    inf = Informer(fake, PERSISTENT_VOLUMES, fields=FIELDS)
    inf.add_handlers(on_add=lambda o: o["spec"]["csi"].update(driver="evil"))
    task = await start(inf)
    assert inf.store.get("a")["spec"]["csi"]["driver"] == "d"  # type: ignore[index]
    got = inf.store.get("a")
    got["spec"]["csi"]["driver"] = "evil"  # type: ignore[index]
    assert inf.store.get("a")["spec"]["csi"]["driver"] == "d"  # type: ignore[index]
    await stop(task)


async def test_stream_end_rewatches_from_last_version_without_relist() -> None:
    fake = FakeKube()
    inf = Informer(fake, PERSISTENT_VOLUMES, fields=FIELDS)
    rec = Recorder()
    rec.attach(inf)
    task = await start(inf)
    await fake.create(PERSISTENT_VOLUMES, pv("a"))
    await until(lambda: ("add", "a") in rec.events)
    fake.close_watches()
    await fake.create(PERSISTENT_VOLUMES, pv("b"))  # while not watching
    await until(lambda: ("add", "b") in rec.events)
    assert len(fake.actions_of("list")) == 1
    assert len(fake.actions_of("watch")) == 2
    assert rec.events.count(("add", "a")) == 1
    await stop(task)


async def test_bookmark_moves_resource_version() -> None:
    fake = FakeKube()
    inf = Informer(fake, PERSISTENT_VOLUMES)
    task = await start(inf)
    await until(lambda: inf.watches == 1)
    await fake.create(VOLUME_ATTACHMENTS, {"metadata": {"name": "other"}})
    fake.bookmark()
    await until(lambda: inf.resource_version == fake.resource_version)
    await stop(task)


async def test_gone_relists_and_synthesises_missed_changes() -> None:
    fake = FakeKube()
    for name in ("keep", "change", "remove"):
        await fake.create(PERSISTENT_VOLUMES, pv(name))
    clock = FakeClock()
    inf = Informer(fake, PERSISTENT_VOLUMES, fields=FIELDS, clock=clock)
    rec = Recorder()
    rec.attach(inf)
    task = await start(inf)
    await until(lambda: inf.watches == 1)
    # An outage: the watch drops, changes happen, history is compacted.
    fake.inject("watch", ApiError(500, "", "apiserver restarting"), times=1)
    fake.close_watches()
    await fake.create(PERSISTENT_VOLUMES, pv("added"))
    await fake.patch(PERSISTENT_VOLUMES, "change", {"spec": {"csi": {"driver": "d2"}}})
    await fake.delete(PERSISTENT_VOLUMES, "remove")
    fake.compact()
    rec.events.clear()
    await until(lambda: len(rec.events) >= 3, clock)
    assert sorted(rec.events) == [("add", "added"), ("delete", "remove"), ("update", "change")]
    assert sorted(inf.store.list_keys()) == ["added", "change", "keep"]
    assert inf.store.get("change")["spec"]["csi"]["driver"] == "d2"  # type: ignore[index]
    assert len(fake.actions_of("list")) == 2
    await stop(task)


async def test_errors_back_off_on_clock_and_loop_survives() -> None:
    fake = FakeKube()
    clock = FakeClock()
    fake.inject("list", ApiError(503, "ServiceUnavailable", "starting"), times=3)
    inf = Informer(fake, PERSISTENT_VOLUMES, clock=clock)
    task = asyncio.create_task(inf.run())
    await clock.settle()
    assert not inf.has_synced()
    assert len(fake.actions_of("list")) == 1
    await until(inf.has_synced, clock)
    assert len(fake.actions_of("list")) == 4
    await stop(task)


async def test_resync_calls_update_for_every_object() -> None:
    fake = FakeKube()
    clock = FakeClock()
    for name in ("a", "b"):
        await fake.create(PERSISTENT_VOLUMES, pv(name))
    inf = Informer(fake, PERSISTENT_VOLUMES, resync_period=60, clock=clock)
    rec = Recorder()
    rec.attach(inf)
    task = asyncio.create_task(inf.run())
    await until(inf.has_synced)
    rec.events.clear()
    await clock.advance(59)
    assert rec.events == []
    await clock.advance(2)
    assert sorted(rec.events) == [("update", "a"), ("update", "b")]
    await stop(task)


async def test_index_by_field() -> None:
    fake = FakeKube()
    for i in range(4):
        await fake.create(
            VOLUME_ATTACHMENTS,
            {
                "metadata": {"name": f"va{i}"},
                "spec": {"source": {"persistentVolumeName": f"pv{i % 2}"}},
            },
        )

    def by_pv(o: JsonDict) -> list[str]:
        name = o.get("spec", {}).get("source", {}).get("persistentVolumeName")
        return [name] if name else []

    inf = Informer(
        fake,
        VOLUME_ATTACHMENTS,
        fields=["spec.source.persistentVolumeName"],
        indexers={"pv": by_pv},
    )
    task = await start(inf)
    assert inf.store.index_keys("pv", "pv0") == ["va0", "va2"]
    await fake.patch(
        VOLUME_ATTACHMENTS, "va0", {"spec": {"source": {"persistentVolumeName": "pv1"}}}
    )
    await fake.delete(VOLUME_ATTACHMENTS, "va2")
    await until(lambda: inf.store.index_keys("pv", "pv0") == [])
    assert inf.store.index_keys("pv", "pv1") == ["va0", "va1", "va3"]
    assert [o["metadata"]["name"] for o in inf.store.by_index("pv", "pv1")] == ["va0", "va1", "va3"]
    await stop(task)


async def test_delete_observers_see_watched_and_relisted_deletions_first() -> None:
    fake = FakeKube()
    for name in ("a", "b"):
        await fake.create(PERSISTENT_VOLUMES, pv(name))
    clock = FakeClock()
    inf = Informer(fake, PERSISTENT_VOLUMES, fields=FIELDS, clock=clock)
    seen: list[tuple[str, str]] = []
    inf.observe_deletes(lambda o: seen.append(("observed", o["metadata"]["name"])))
    inf.observe_deletes(lambda o: 1 / 0)  # a failing observer stops nothing
    inf.add_handlers(on_delete=lambda o: seen.append(("handler", o["metadata"]["name"])))
    task = await start(inf)
    await until(lambda: inf.watches == 1)
    await fake.delete(PERSISTENT_VOLUMES, "a")
    await until(lambda: ("handler", "a") in seen)
    # A deletion found by a re-list (410 after compaction) is observed too.
    fake.close_watches()
    await fake.delete(PERSISTENT_VOLUMES, "b")
    fake.compact()
    await until(lambda: ("handler", "b") in seen, clock)
    assert seen == [("observed", "a"), ("handler", "a"), ("observed", "b"), ("handler", "b")]
    await stop(task)


async def test_the_first_list_asks_the_cache_later_lists_the_latest_state() -> None:
    fake = FakeKube()
    for i in range(4):
        await fake.create(PERSISTENT_VOLUMES, pv(f"pv{i}"))
    asked: list[str | None] = []
    real_list = fake.list

    async def list_(*args: object, **kwargs: object) -> JsonDict:
        asked.append(kwargs.get("resource_version"))  # type: ignore[arg-type]
        return await real_list(*args, **kwargs)  # type: ignore[arg-type]

    fake.list = list_  # type: ignore[method-assign]
    inf = Informer(fake, PERSISTENT_VOLUMES, fields=FIELDS, page_size=3)
    await inf._list()
    await inf._list()
    # client-go's reflector: "0" for the first page of the first list only (continue pages
    # carry their own version), then the latest state.
    assert asked == ["0", None, None, None]
