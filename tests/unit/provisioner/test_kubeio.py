"""KubeIO: read-your-writes bookkeeping and the per-entry finalizer patch."""

from __future__ import annotations

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES
from csi_sidecars.provisioner.kubeio import KubeIO, remove_finalizer_entry_patch

OURS = "external-provisioner.volume.kubernetes.io/finalizer"
PROTECTION = "kubernetes.io/pv-protection"


def _pv(finalizers: list[str], rv: str = "5") -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "pv", "resourceVersion": rv, "finalizers": finalizers}}


def test_entry_patch_removes_only_our_entry() -> None:
    ops = remove_finalizer_entry_patch(_pv([OURS, PROTECTION]), OURS)
    assert ops == [
        {"op": "test", "path": "/metadata/finalizers/0", "value": OURS},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    # Someone removed their own finalizer meanwhile: our patch still applies.
    assert apply_json_patch(_pv([OURS]), ops)["metadata"]["finalizers"] == []
    assert remove_finalizer_entry_patch(_pv([PROTECTION]), OURS) is None


def test_stale_until_the_cache_catches_up() -> None:
    io = KubeIO(FakeKube())
    io.wrote("ns/a", {"metadata": {"resourceVersion": "10"}})
    assert io.stale("ns/a", {"metadata": {"resourceVersion": "9"}})
    assert not io.stale("ns/a", {"metadata": {"resourceVersion": "10"}})
    # Forgotten once caught up.
    assert not io.stale("ns/a", {"metadata": {"resourceVersion": "9"}})


async def test_finalizer_removal_survives_a_concurrent_change() -> None:
    kube = FakeKube()
    stored = await kube.create(PERSISTENT_VOLUMES, _pv([OURS, PROTECTION], rv=""))
    cached = {**stored}
    await kube.patch(PERSISTENT_VOLUMES, "pv", {"metadata": {"finalizers": [OURS]}})
    io = KubeIO(kube)
    assert await io.set_volume_finalizer(cached, OURS, False)
    after = kube.peek(PERSISTENT_VOLUMES, "pv")
    assert after is not None and not after["metadata"].get("finalizers")
    assert len(kube.actions_of("patch", PERSISTENT_VOLUMES)) == 2  # no re-read, no retry
    assert not kube.actions_of("get", PERSISTENT_VOLUMES)
