"""Memory per cached PersistentVolume in the informer store (bytes per object, tracemalloc).

Builds 10,000 realistic PersistentVolume JSON documents (as a watch delivers them), decodes each
with ``json.loads`` and upserts it into a :class:`csi_sidecars.kube.store.Store` with the fields
a provisioner/attacher reads, then prints the traced bytes per object. Also prints what keeping
the whole decoded objects would cost, for comparison. Budget: under 1.5 KiB per object.

Run: ``python bench/kube_store_memory.py [count]``.
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
import uuid

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


def main() -> None:
    """Print bytes per object."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    slim = measure(count, PV_FIELDS)
    print(f"slim store: {slim:.0f} bytes/object ({count} PersistentVolumes, budget 1536)")
    print(f"plain dicts of whole objects: {measure_plain(count):.0f} bytes/object")
    sys.exit(0 if slim < 1536 else 1)


if __name__ == "__main__":
    main()
