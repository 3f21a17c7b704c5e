"""The executors' writes and reads: read-your-writes, the per-entry finalizer patch as it is
performed, strict Secret data."""

from __future__ import annotations

import base64

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.objects import SecretError
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, SECRETS
from csi_sidecars.provisioner.decide.claims import update_claim
from csi_sidecars.provisioner.decide.deletion import release_plan
from csi_sidecars.provisioner.decide.secrets import SecretRef
from csi_sidecars.provisioner.execute.context import read_secret

OURS = "external-provisioner.volume.kubernetes.io/finalizer"
PROTECTION = "kubernetes.io/pv-protection"


def _pv(finalizers: list[str], rv: str = "5") -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "pv", "resourceVersion": rv, "finalizers": finalizers}}


async def test_stale_until_the_cache_catches_up() -> None:
    kube = FakeKube()
    claim = await kube.create(
        PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "a", "namespace": "ns"}}, "ns"
    )
    performer = Performer(kube, None, None, timeout=1.0)

    def labelled(pvc: object) -> dict:  # type: ignore[type-arg]
        return {**claim, "metadata": {**claim["metadata"], "labels": {"x": "y"}}}

    assert await performer.perform(update_claim(claim, labelled)) == a.Done()
    written = performer.written[PERSISTENT_VOLUME_CLAIMS.plural]
    assert written.stale("ns/a", claim)  # the cache still shows the copy before our write
    current = kube.peek(PERSISTENT_VOLUME_CLAIMS, "a", "ns")
    assert current is not None
    assert not written.stale("ns/a", current)
    # Forgotten once caught up.
    assert not written.stale("ns/a", claim)


async def test_finalizer_removal_survives_a_concurrent_change() -> None:
    kube = FakeKube()
    stored = await kube.create(PERSISTENT_VOLUMES, _pv([OURS, PROTECTION], rv=""))
    cached = {**stored}
    await kube.patch(PERSISTENT_VOLUMES, "pv", {"metadata": {"finalizers": [OURS]}})
    performer = Performer(kube, None, None, timeout=1.0)
    assert await performer.perform(release_plan(cached)) == a.Done()
    after = kube.peek(PERSISTENT_VOLUMES, "pv")
    assert after is not None and not after["metadata"].get("finalizers")
    assert len(kube.actions_of("patch", PERSISTENT_VOLUMES)) == 2  # no re-read, no retry
    assert not kube.actions_of("get", PERSISTENT_VOLUMES)
    # What the patch returned is held until the PV cache shows it.
    assert performer.written[PERSISTENT_VOLUMES.plural].stale("pv", cached)


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
    assert await read_secret(kube, SecretRef("ok", "ns")) == {"pw": "s3cret"}
    assert await read_secret(kube, None) == {}
    with pytest.raises(SecretError) as exc:
        await read_secret(kube, SecretRef("bad", "ns"))
    assert "ns/bad" in str(exc.value) and "'key'" in str(exc.value)
    assert "s3cret" not in str(exc.value) and "%%%" not in str(exc.value)
    with pytest.raises(LookupError, match="error getting secret gone in namespace ns"):
        await read_secret(kube, SecretRef("gone", "ns"))
