"""WrittenCache.get: what we created is visible before the cache lists it."""

from __future__ import annotations

from csi_sidecars.kube.written import WrittenCache


def test_get_holds_a_created_object_until_the_cache_shows_it() -> None:
    written = WrittenCache()
    pv = {"metadata": {"name": "pv", "resourceVersion": "7"}}
    written.remember("pv", pv)
    assert written.get("pv") == pv
    assert written.get("pv") == pv  # no cache comparison: still there
    written.observe("pv", {"metadata": {"name": "pv", "resourceVersion": "7"}})
    assert written.get("pv") is None
    assert written.get("other") is None
