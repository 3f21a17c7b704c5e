"""The owner of the CSIStorageCapacity objects: the pod, or its controllers up the levels."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import PODS
from csi_sidecars.provisioner.execute.owner import OwnerError, lookup_owner, resource_of

NS = "storage"
DS = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "prov", "uid": "ds-uid",
      "controller": True}  # fmt: skip


async def _kube(owner: dict[str, object] | None) -> FakeKube:
    kube = FakeKube()
    meta: dict[str, object] = {"name": "prov-x", "namespace": NS, "uid": "pod-uid"}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "n",
                                    "uid": "n-uid"}, owner]  # fmt: skip
    await kube.create(PODS, {"metadata": meta}, NS)
    return kube


async def test_levels() -> None:
    kube = await _kube(DS)
    assert await lookup_owner(kube, NS, "prov-x", 0) == {
        "apiVersion": "v1", "kind": "Pod", "name": "prov-x", "uid": "pod-uid", "controller": True
    }  # fmt: skip
    assert await lookup_owner(kube, NS, "prov-x", 1) == DS
    # Level 2 needs the DaemonSet, which has no controlling owner.
    await kube.create(resource_of("apps/v1", "DaemonSet"), {"metadata": {"name": "prov"}}, NS)
    with pytest.raises(OwnerError, match="apps/v1/DaemonSet 'prov' in namespace 'storage' has no"):
        await lookup_owner(kube, NS, "prov-x", 2)


async def test_missing_pod_and_no_controller() -> None:
    kube = await _kube(None)
    with pytest.raises(OwnerError, match='get object: pods "nope" not found'):
        await lookup_owner(kube, NS, "nope", 0)
    with pytest.raises(OwnerError, match="has no controlling owner"):
        await lookup_owner(kube, NS, "prov-x", 1)


def test_resource_of_owner_kinds() -> None:
    rs = resource_of("apps/v1", "ReplicaSet")
    assert (rs.group, rs.version, rs.plural, rs.namespaced) == ("apps", "v1", "replicasets", True)
    assert resource_of("apps/v1", "StatefulSet").plural == "statefulsets"
    assert resource_of("v1", "Pod").path("ns", "x") == "/api/v1/namespaces/ns/pods/x"
