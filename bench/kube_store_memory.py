"""Memory per cached PersistentVolume in the informer store (bytes per object, tracemalloc).

Builds 10,000 realistic PersistentVolume JSON documents (as a watch delivers them), decodes each
with ``json.loads`` and upserts it into a :class:`csi_sidecars.kube.store.Store` with the fields
a provisioner/attacher reads, then prints the traced bytes per object. Also prints what keeping
the whole decoded objects would cost, for comparison. Budget: under 1.5 KiB per object.

It then compares the two ways an informer can decode the same list pages (500 objects a page,
as the API server sends them): ``json.loads`` of the page followed by the projection, and
:class:`csi_sidecars.kube.decode.SlimDecoder` (msgspec, undeclared fields skipped while
parsing): CPU microseconds per object and the traced peak while one page is decoded.

Run: ``python bench/kube_store_memory.py [count]``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from csi_sidecars.kube.store import Projection, Store

PV_FIELDS = [
    "metadata.uid",
    "metadata.annotations",
    "metadata.finalizers",
    "metadata.deletionTimestamp",
    "spec.csi.driver",
    "spec.csi.volumeHandle",
    "spec.claimRef.namespace",
    "spec.claimRef.name",
    "spec.claimRef.uid",
    "spec.persistentVolumeReclaimPolicy",
    "spec.storageClassName",
    "status.phase",
]


def make_pv(i: int) -> bytes:
    """One PersistentVolume as the API server would send it."""
    name = f"pvc-{uuid.uuid4()}"
    obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(1_000_000 + i),
            "creationTimestamp": "2026-11-26T14:00:00Z",
            "annotations": {
                "pv.kubernetes.io/provisioned-by": "hostpath.csi.k8s.io",
                "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
            },
            "finalizers": [
                "kubernetes.io/pv-protection",
                "external-provisioner.volume.kubernetes.io/finalizer",
            ],
            "managedFields": [
                {
                    "manager": "csi-provisioner",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-26T14:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}}},
                }
            ],
        },
        "spec": {
            "capacity": {"storage": "1Gi"},
            "csi": {
                "driver": "hostpath.csi.k8s.io",
                "volumeHandle": str(uuid.uuid4()),
                "fsType": "ext4",
                "volumeAttributes": {
                    "storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-hostpath"
                },
            },
            "accessModes": ["ReadWriteOnce"],
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "namespace": f"ns-{i % 20}",
                "name": f"claim-{i}",
                "uid": str(uuid.uuid4()),
                "apiVersion": "v1",
                "resourceVersion": str(900_000 + i),
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "csi-hostpath-sc",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound", "lastPhaseTransitionTime": "2026-11-26T14:00:00Z"},
    }
    return json.dumps(obj).encode()


def measure(count: int, fields: list[str] | None) -> float:
    """Traced bytes per object for ``count`` PVs in a store keeping ``fields``."""
    docs = [make_pv(i) for i in range(count)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = Store(
        Projection(fields),
        indexers={"driver": lambda o: [o.get("spec", {}).get("csi", {}).get("driver", "")]},
    )
    for doc in docs:
        store.upsert(json.loads(doc))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(store) == count
    return used / count


def measure_plain(count: int) -> float:
    """Traced bytes per object when whole decoded objects are kept in a dict."""
    docs = [make_pv(i) for i in range(count)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    cache = {}
    for doc in docs:
        obj = json.loads(doc)
        cache[obj["metadata"]["name"]] = obj
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / count


def pages(count: int, size: int = 500) -> list[bytes]:
    """``count`` PVs as list pages of ``size`` items."""
    docs = [make_pv(i) for i in range(count)]
    return [
        b'{"kind":"PersistentVolumeList","apiVersion":"v1","metadata":{"resourceVersion":"7",'
        b'"continue":"x"},"items":[' + b",".join(docs[i : i + size]) + b"]}"
        for i in range(0, count, size)
    ]


def decode_cost(raw_pages: list[bytes], decode: Callable[[bytes], Any]) -> tuple[float, float]:
    """(CPU microseconds per object to decode and store every page, traced peak KiB of one)."""
    store = Store(Projection(PV_FIELDS))
    objects = 0
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for page in raw_pages:
            for item in decode(page)["items"]:
                store.upsert(item)
                objects += 1
        best = min(best, time.process_time() - start)
    gc.collect()
    tracemalloc.start()
    decoded = decode(raw_pages[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del decoded
    return best * 1e6 / (objects / 3), peak / 1024


def main() -> None:
    """Print bytes per object, then the decoders' cost."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    slim = measure(count, PV_FIELDS)
    print(f"slim store: {slim:.0f} bytes/object ({count} PersistentVolumes, budget 1536)")
    print(f"plain dicts of whole objects: {measure_plain(count):.0f} bytes/object")
    raw_pages = pages(count)
    decoder = Projection(PV_FIELDS).decoder
    for label, decode in (("json.loads + projection", json.loads), ("msgspec slim", decoder.page)):
        cpu, peak = decode_cost(raw_pages, decode)
        print(f"{label}: {cpu:.1f} CPU us/object decoded and stored, {peak:.0f} KiB peak a page")
    sys.exit(0 if slim < 1536 else 1)


if __name__ == "__main__":
    main()
