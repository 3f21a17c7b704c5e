"""KubeIO: read-your-writes bookkeeping, the per-entry finalizer patch, strict Secret data."""

from __future__ import annotations

import base64

import pytest

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.objects import SecretError
from csi_sidecars.kube.patch import remove_finalizer_patch
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, SECRETS
from csi_sidecars.provisioner.kubeio import KubeIO
from csi_sidecars.provisioner.secrets import SecretRef

OURS = "external-provisioner.volume.kubernetes.io/finalizer"
PROTECTION = "kubernetes.io/pv-protection"


def _pv(finalizers: list[str], rv: str = "5") -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "pv", "resourceVersion": rv, "finalizers": finalizers}}


def test_entry_patch_removes_only_our_entry() -> None:
    ops = remove_finalizer_patch(_pv([OURS, PROTECTION]), OURS)
    assert ops == [
        {"op": "test", "path": "/metadata/finalizers/0", "value": OURS},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    # Someone removed their own finalizer meanwhile: our patch still applies.
    assert apply_json_patch(_pv([OURS]), ops)["metadata"]["finalizers"] == []
    assert remove_finalizer_patch(_pv([PROTECTION]), OURS) is None


def test_stale_until_the_cache_catches_up() -> None:
    io = KubeIO(FakeKube())
    io.claims.remember("ns/a", {"metadata": {"resourceVersion": "10"}})
    assert io.claims.stale("ns/a", {"metadata": {"resourceVersion": "9"}})
    assert not io.claims.stale("ns/a", {"metadata": {"resourceVersion": "10"}})
    # Forgotten once caught up.
    assert not io.claims.stale("ns/a", {"metadata": {"resourceVersion": "9"}})


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
    # What the patch returned is held until the PV cache shows it.
    assert io.volumes.stale("pv", cached)


async def test_secret_data_is_decoded_strictly() -> None:
    kube = FakeKube()
    good = base64.b64encode(b"s3cret").decode()
    await kube.create(
        SECRETS, {"metadata": {"name": "ok", "namespace": "ns"}, "data": {"pw": good}}, "ns"
    )
    await kube.create(
        SECRETS,
        {"metadata": {"name": "bad", "namespace": "ns"}, "data": {"pw": good, "key": "%%%"}},
        "ns",
    )
    io = KubeIO(kube)
    assert await io.secret_data(SecretRef("ok", "ns")) == {"pw": "s3cret"}
    assert await io.secret_data(None) == {}
    with pytest.raises(SecretError) as exc:
        await io.secret_data(SecretRef("bad", "ns"))
    assert "ns/bad" in str(exc.value) and "'key'" in str(exc.value)
    assert "s3cret" not in str(exc.value) and "%%%" not in str(exc.value)
    with pytest.raises(LookupError, match="error getting secret gone in namespace ns"):
        await io.secret_data(SecretRef("gone", "ns"))
