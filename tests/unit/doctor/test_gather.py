"""gather: what is listed where, pagination, and how unreadable kinds are recorded."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.doctor.gather import GatherError, gather
from csi_sidecars.doctor.scan import Target
from csi_sidecars.kube.config import ClientConfig
from csi_sidecars.kube.resources import ApiError, Resource
from tests.unit.doctor import objs
from tests.unit.doctor.objs import NS


class FakeClient:
    """Answers ``list`` from canned pages; records every call."""

    def __init__(
        self, items: dict[str, list[dict[str, Any]]], errors: dict[str, Exception], page: int = 2
    ) -> None:
        self.config = ClientConfig(host="https://api.test")
        self.items = items
        self.errors = errors
        self.page = page
        self.calls: list[tuple[str, str | None, str | None]] = []

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        if continue_token is None:
            self.calls.append((resource.plural, namespace, field_selector))
        if resource.plural in self.errors:
            raise self.errors[resource.plural]
        found = [
            o
            for o in self.items.get(resource.plural, [])
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]
        start = int(continue_token or 0)
        chunk = found[start : start + self.page]
        more = start + self.page < len(found)
        return {"items": chunk, "metadata": {"continue": str(start + self.page) if more else ""}}


def cluster() -> dict[str, list[dict[str, Any]]]:
    bound = objs.pvc("ok", phase="Bound", volumeName="pvc-ok")
    bound["status"]["capacity"] = {"storage": "1Gi"}
    bound["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    fine = objs.pvc("fine", phase="Bound", namespace="quiet")
    fine["status"]["capacity"] = {"storage": "1Gi"}
    return {
        "persistentvolumeclaims": [bound, objs.pvc("stuck"), fine],
        "storageclasses": [objs.storage_class(name=f"sc{i}") for i in range(5)],
        "pods": [objs.pod("web", ["stuck"])],
        "events": [objs.event("PersistentVolumeClaim", "stuck", "X", "m", NS)],
    }


async def run(client: FakeClient, target: Target) -> Any:
    return await gather(client, target, now=lambda: objs.NOW)  # type: ignore[arg-type]


async def test_scan_lists_pods_and_events_only_where_needed() -> None:
    client = FakeClient(cluster(), {})
    snap = await run(client, Target())
    pods = [(ns, fs) for plural, ns, fs in client.calls if plural == "pods"]
    events = sorted((ns or "", fs or "") for plural, ns, fs in client.calls if plural == "events")
    # "quiet" has only a healthy claim: neither its Pods nor its events are read.
    assert pods == [(NS, None)]
    assert events == [("app", ""), ("default", "")]
    assert len(snap.items("StorageClass")) == 5  # three pages followed
    assert "managedFields" not in snap.get("PersistentVolumeClaim", "ok", NS)["metadata"]
    assert snap.now == objs.NOW
    leases = [fs for plural, _, fs in client.calls if plural == "leases"]
    assert leases == ["metadata.namespace!=kube-node-lease"]


async def test_one_claim_reads_its_namespace_and_its_events() -> None:
    client = FakeClient(cluster(), {})
    await run(client, Target("PersistentVolumeClaim", "stuck", NS))
    by_kind = {plural: (ns, fs) for plural, ns, fs in client.calls}
    assert by_kind["persistentvolumeclaims"] == (NS, None)
    assert by_kind["pods"] == (NS, None)
    assert by_kind["events"] == (NS, "involvedObject.name=stuck")
    assert by_kind["persistentvolumes"] == (None, None)


async def test_one_volume_reads_events_in_default() -> None:
    client = FakeClient(cluster(), {})
    await run(client, Target("PersistentVolume", "pvc-1"))
    assert [c for c in client.calls if c[0] in ("pods", "events")] == [
        ("events", "default", "involvedObject.name=pvc-1")
    ]


async def test_missing_crds_and_forbidden_kinds_are_recorded() -> None:
    errors: dict[str, Exception] = {
        "volumesnapshots": ApiError(404, "NotFound", "the server could not find it"),
        "leases": ApiError(403, "Forbidden", "leases.coordination.k8s.io is forbidden"),
    }
    snap = await run(FakeClient(cluster(), errors), Target())
    for kind in ("VolumeSnapshot", "VolumeSnapshotContent", "VolumeSnapshotClass"):
        assert snap.unavailable[kind].startswith("not installed"), kind
        assert not snap.readable(kind)
    assert snap.unavailable["Lease"].startswith("forbidden: leases.coordination.k8s.io")
    assert snap.readable("PersistentVolumeClaim")


async def test_refused_credentials_stop_the_run() -> None:
    errors: dict[str, Exception] = {"nodes": ApiError(401, "Unauthorized", "bad token")}
    with pytest.raises(GatherError, match="401 Unauthorized"):
        await run(FakeClient(cluster(), errors), Target())


async def test_transport_errors_become_gather_errors() -> None:
    errors: dict[str, Exception] = {"nodes": ConnectionRefusedError(111, "refused")}
    with pytest.raises(GatherError, match=r"cannot read from the API server at https://api\.test"):
        await run(FakeClient(cluster(), errors), Target())
