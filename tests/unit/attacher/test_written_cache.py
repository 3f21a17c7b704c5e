"""Read-your-writes as the attacher relies on it (the shared kube.written.WrittenCache).

The Performer keeps one per resource; our writes win over an older informer copy, and only
until the informer catches up.
"""

from __future__ import annotations

from typing import Any

from csi_sidecars.kube.written import WrittenCache


def obj(name: str, rv: Any, attached: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}, "status": {"attached": attached}}


def test_newer_write_wins_until_the_cache_catches_up() -> None:
    cache = WrittenCache()
    cache.remember("va1", obj("va1", "12", attached=True))
    stale = obj("va1", "10")
    assert cache.newest("va1", stale) == obj("va1", "12", attached=True)
    assert len(cache) == 1
    caught_up = obj("va1", "12", attached=True)
    cache.observe("va1", caught_up)
    assert len(cache) == 0
    assert cache.newest("va1", stale) is stale


def test_cache_newer_than_the_write_is_used_and_the_write_dropped() -> None:
    cache = WrittenCache()
    cache.remember("va1", obj("va1", "12"))
    newer = obj("va1", "15", attached=True)
    assert cache.newest("va1", newer) is newer
    assert len(cache) == 0


def test_unparsable_versions_fall_back_to_the_informer() -> None:
    cache = WrittenCache()
    cache.remember("va1", obj("va1", "abc"))
    assert len(cache) == 0
    cache.remember("va1", obj("va1", "7"))
    weird = obj("va1", "x")
    assert cache.newest("va1", weird) is weird
    cache.remember("va2", obj("va2", "7"))
    cache.forget("va2")
    assert cache.newest("va2", None) is None


def test_deleted_after_the_last_finalizer_went() -> None:
    cache = WrittenCache()
    gone = obj("va1", "20")
    gone["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=[])
    cache.remember("va1", gone)
    assert cache.deleted("va1")
    kept = obj("va2", "21")
    kept["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["other/x"])
    cache.remember("va2", kept)
    assert not cache.deleted("va2")
    assert not cache.deleted("va3")
