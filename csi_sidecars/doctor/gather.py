"""Reading the cluster into a :class:`~csi_sidecars.doctor.snapshot.ClusterSnapshot`.

The only I/O of doctor, and only reads (``list``): first the storage objects (classes,
drivers, CSINodes, Nodes, claims, volumes, attachments, Leases, capacities, snapshots), all at
once; then Pods and Events, only in the namespaces where a claim or snapshot needs them (or,
for one object, only that object's events), so that a scan of a large cluster does not list
every Pod. A kind that cannot be read is recorded with the reason (404: the VolumeSnapshot
CRDs are not installed; 403: no permission) and the checkers say what they could not see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from csi_sidecars.doctor.scan import NAMESPACED, Target
from csi_sidecars.doctor.snapshot import (
    CAPACITY,
    CSI_DRIVER,
    CSI_NODE,
    EVENT,
    LEASE,
    NODE,
    POD,
    PV,
    PVC,
    SNAPSHOT_CLASS,
    SNAPSHOT_CONTENT,
    SNAPSHOT_KINDS,
    STORAGE_CLASS,
    VOLUME_ATTACHMENT,
    VOLUME_SNAPSHOT,
    ClusterSnapshot,
)
from csi_sidecars.kube.client import KubeClient
from csi_sidecars.kube.objects import JsonDict, dig, is_deleting, namespace, status
from csi_sidecars.kube.resources import (
    CSI_DRIVERS,
    CSI_NODES,
    CSI_STORAGE_CAPACITIES,
    EVENTS,
    LEASES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    VOLUME_ATTACHMENTS,
    ApiError,
    Resource,
)

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
VOLUME_SNAPSHOTS = Resource(SNAPSHOT_GROUP, "v1", "volumesnapshots", True, VOLUME_SNAPSHOT)
VOLUME_SNAPSHOT_CONTENTS = Resource(
    SNAPSHOT_GROUP, "v1", "volumesnapshotcontents", False, SNAPSHOT_CONTENT
)
VOLUME_SNAPSHOT_CLASSES = Resource(
    SNAPSHOT_GROUP, "v1", "volumesnapshotclasses", False, SNAPSHOT_CLASS
)

RESOURCES: dict[str, Resource] = {
    STORAGE_CLASS: STORAGE_CLASSES,
    CSI_DRIVER: CSI_DRIVERS,
    CSI_NODE: CSI_NODES,
    NODE: NODES,
    PVC: PERSISTENT_VOLUME_CLAIMS,
    PV: PERSISTENT_VOLUMES,
    VOLUME_ATTACHMENT: VOLUME_ATTACHMENTS,
    POD: PODS,
    EVENT: EVENTS,
    LEASE: LEASES,
    CAPACITY: CSI_STORAGE_CAPACITIES,
    VOLUME_SNAPSHOT: VOLUME_SNAPSHOTS,
    SNAPSHOT_CONTENT: VOLUME_SNAPSHOT_CONTENTS,
    SNAPSHOT_CLASS: VOLUME_SNAPSHOT_CLASSES,
}
#: Objects per list page.
PAGE = 500
#: Above this many namespaces, Pods and Events are listed cluster-wide in one go.
MAX_NAMESPACE_LISTS = 10
#: Node heartbeat Leases: one per node, never a sidecar's.
NODE_LEASES = "kube-node-lease"


class GatherError(RuntimeError):
    """The cluster could not be read at all (unreachable, credentials refused)."""


def _slim(obj: JsonDict) -> JsonDict:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


async def list_all(
    client: KubeClient,
    resource: Resource,
    ns: str | None = None,
    field_selector: str | None = None,
) -> list[JsonDict]:
    """Every object of a list, page by page, without ``managedFields``."""
    items: list[JsonDict] = []
    token: str | None = None
    while True:
        page = await client.list(
            resource, ns, field_selector=field_selector, limit=PAGE, continue_token=token
        )
        items += [_slim(i) for i in page.get("items") or [] if isinstance(i, dict)]
        token = dig(page, "metadata", "continue") or None
        if not token:
            return items


def _reason(exc: ApiError, resource: Resource) -> str:
    if exc.status == 404:
        return (
            f"not installed: the API server does not serve {resource.api_version}/{resource.plural}"
        )
    if exc.status == 403:
        return f"forbidden: {exc.message or 'no list permission'}"
    return f"error {exc.status}: {exc.message}"


class _Reader:
    """Collects lists and the reasons of those that failed."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.objects: dict[str, list[JsonDict]] = {}
        self.unavailable: dict[str, str] = {}

    async def read(
        self,
        kind: str,
        namespaces: Iterable[str | None] = (None,),
        field_selector: str | None = None,
    ) -> None:
        resource = RESOURCES[kind]
        found: list[JsonDict] = []
        try:
            for ns in namespaces:
                found += await list_all(self.client, resource, ns, field_selector)
        except ApiError as exc:
            if exc.status == 401:
                raise GatherError(
                    f"the API server refused the credentials (401 Unauthorized): {exc.message}"
                ) from None
            self.unavailable[kind] = _reason(exc, resource)
            return
        self.objects[kind] = found


def _interesting_claim(pvc: JsonDict) -> bool:
    return (
        is_deleting(pvc)
        or status(pvc).get("phase") != "Bound"
        or bool(
            dig(pvc, "spec", "resources", "requests", "storage")
            != dig(pvc, "status", "capacity", "storage")
        )
    )


def _interesting_snapshot(vs: JsonDict) -> bool:
    return is_deleting(vs) or not status(vs).get("readyToUse")


def _scoped(namespaces: set[str]) -> list[str | None]:
    if len(namespaces) > MAX_NAMESPACE_LISTS:
        return [None]
    return [*sorted(namespaces)]


async def gather(
    client: KubeClient, target: Target, now: Callable[[], float] = time.time
) -> ClusterSnapshot:
    """Read what the checkers of ``target`` need.

    Raises:
        GatherError: the API server is unreachable or refuses the credentials.
    """
    reader = _Reader(client)
    one = target.kind is not None and target.name is not None
    ns_limit = target.namespace
    if one and target.kind in NAMESPACED:
        ns_limit = target.namespace or "default"
    scoped = [ns_limit]
    first: list[Any] = [
        reader.read(STORAGE_CLASS),
        reader.read(CSI_DRIVER),
        reader.read(CSI_NODE),
        reader.read(NODE),
        reader.read(PVC, scoped),
        reader.read(PV),
        reader.read(VOLUME_ATTACHMENT),
        reader.read(LEASE, field_selector=f"metadata.namespace!={NODE_LEASES}"),
        reader.read(CAPACITY),
        reader.read(VOLUME_SNAPSHOT, scoped),
        reader.read(SNAPSHOT_CONTENT),
        reader.read(SNAPSHOT_CLASS),
    ]
    try:
        await asyncio.gather(*first)
    except GatherError:
        raise
    except Exception as exc:  # aiohttp, TLS, DNS, timeouts: report them, never a traceback
        raise GatherError(
            f"cannot read from the API server at {client.config.host}: {type(exc).__name__}: {exc}"
        ) from None
    missing = reader.unavailable.get(VOLUME_SNAPSHOT, "")
    if missing.startswith("not installed"):
        for kind in SNAPSHOT_KINDS:
            reader.objects.pop(kind, None)
            reader.unavailable[kind] = missing
    pod_ns, event_ns, selector = _second_phase(reader, target, ns_limit)
    try:
        await asyncio.gather(
            reader.read(POD, _scoped(pod_ns)) if pod_ns else asyncio.sleep(0),
            reader.read(EVENT, _scoped(event_ns), selector),
        )
    except GatherError:
        raise
    except Exception as exc:
        raise GatherError(
            f"cannot read from the API server at {client.config.host}: {type(exc).__name__}: {exc}"
        ) from None
    reader.objects.setdefault(POD, [])
    return ClusterSnapshot(
        now=now(),
        objects={k: tuple(v) for k, v in reader.objects.items()},
        unavailable=dict(reader.unavailable),
    )


def _second_phase(
    reader: _Reader, target: Target, ns_limit: str | None
) -> tuple[set[str], set[str], str | None]:
    """Namespaces to list Pods and Events in, and a field selector for the events."""
    claims = reader.objects.get(PVC, [])
    snapshots = reader.objects.get(VOLUME_SNAPSHOT, [])
    if target.kind is not None and target.name is not None:
        selector = f"involvedObject.name={target.name}"
        if target.kind in NAMESPACED:
            assert ns_limit is not None
            return ({ns_limit} if target.kind == PVC else set()), {ns_limit}, selector
        return set(), {"default"}, selector
    pod_ns = {namespace(c) for c in claims if _interesting_claim(c)}
    event_ns = {"default", *pod_ns}
    event_ns |= {namespace(s) for s in snapshots if _interesting_snapshot(s)}
    if ns_limit is not None:
        event_ns = {"default", ns_limit}
    return pod_ns, event_ns, None
