"""Read-your-writes: our write wins over an older cache copy, and leaves nothing behind."""

from __future__ import annotations

from csi_sidecars.kube.written import WrittenCache, revision


def _obj(rv: str, **meta: object) -> dict[str, object]:
    return {"metadata": {"name": "a", "resourceVersion": rv, **meta}}


def test_newest_prefers_our_newer_write_until_the_cache_catches_up() -> None:
    cache = WrittenCache()
    cache.remember("a", _obj("10"))  # type: ignore[arg-type]
    assert cache.newest("a", _obj("9")) == _obj("10")  # type: ignore[arg-type]
    assert cache.stale("a", _obj("9"))
    assert len(cache) == 1
    assert cache.newest("a", _obj("11")) == _obj("11")  # type: ignore[arg-type]
    assert len(cache) == 0  # caught up: forgotten
    assert not cache.stale("a", _obj("9"))


def test_older_write_never_replaces_a_newer_one_and_non_numbers_fall_back() -> None:
    cache = WrittenCache()
    cache.remember("a", _obj("10"))  # type: ignore[arg-type]
    cache.remember("a", _obj("8"))  # type: ignore[arg-type]
    assert cache.newest("a", _obj("9")) == _obj("10")  # type: ignore[arg-type]
    cache.remember("b", {"metadata": {"resourceVersion": "x"}})
    assert len(cache) == 1 and revision({"metadata": {"resourceVersion": "x"}}) is None
    cache.observe("a", _obj("12"))
    assert len(cache) == 0


def test_deleted_and_forget() -> None:
    cache = WrittenCache()
    cache.remember("a", _obj("3", deletionTimestamp="t", finalizers=[]))  # type: ignore[arg-type]
    assert cache.deleted("a")
    cache.remember("a", _obj("4", deletionTimestamp="t", finalizers=["f"]))  # type: ignore[arg-type]
    assert not cache.deleted("a")
    cache.forget("a")
    assert len(cache) == 0 and not cache.deleted("a")
    assert cache.newest("a", None) is None
