"""Kubernetes objects the testbed creates in place of a kubelet and a driver installer.

Without a kubelet nobody registers Nodes or CSINodes, so the testbed writes them itself, shaped
the way kubelet writes them, and a driver installer's static CSIDriver object. Pure builders: the
control plane sends what these return.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: The topology key of the hostpath driver (and of ours, which mimics it).
TOPOLOGY_KEY = "topology.hostpath.csi/node"
#: Annotation telling kube-controller-manager to attach and detach volumes for the node.
CONTROLLER_MANAGED_ATTACH = "volumes.kubernetes.io/controller-managed-attach-detach"
DEFAULT_DRIVER = "hostpath.csi.k8s.io"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str, topology_key: str = TOPOLOGY_KEY) -> dict[str, Any]:
    """A Node as kubelet registers it: labels, attach-detach annotation, no taints."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                topology_key: name,
            },
            "annotations": {CONTROLLER_MANAGED_ATTACH: "true"},
        },
        "spec": {},
    }


def node_status(
    cpu: str = "8", memory: str = "16Gi", pods: str = "110", version: str = "v1.36.3"
) -> dict[str, Any]:
    """A Node ``status`` that makes the node Ready and schedulable, for the status subresource."""
    now = _now()
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    conditions = [
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status (testbed)"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "testbed"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "testbed"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "testbed"),
    ]
    return {
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, status, reason, message in conditions
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {
                "kubeletVersion": version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "testbed://0",
                "kernelVersion": "",
                "osImage": "csi-sidecars testbed",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }


def csinode(name: str, node_uid: str | None = None) -> dict[str, Any]:
    """An empty CSINode, as kubelet creates it at start, owned by its Node."""
    metadata: dict[str, Any] = {"name": name}
    if node_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
        ]
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": metadata,
        "spec": {"drivers": []},
    }


def csinode_driver(
    driver: str,
    node_id: str,
    topology_keys: list[str] | None = None,
    allocatable_count: int | None = None,
) -> dict[str, Any]:
    """One ``spec.drivers`` entry of a CSINode, as kubelet adds it when a driver registers."""
    entry: dict[str, Any] = {"name": driver, "nodeID": node_id}
    if topology_keys:
        entry["topologyKeys"] = list(topology_keys)
    if allocatable_count is not None:
        entry["allocatable"] = {"count": allocatable_count}
    return entry


def with_driver(csinode_obj: dict[str, Any], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``spec.drivers`` of ``csinode_obj`` with ``entry`` added or replacing its namesake."""
    drivers = [
        d for d in csinode_obj.get("spec", {}).get("drivers") or [] if d["name"] != entry["name"]
    ]
    return [*drivers, entry]


def csidriver(
    name: str = DEFAULT_DRIVER,
    attach_required: bool = True,
    pod_info_on_mount: bool = True,
    storage_capacity: bool = False,
    fs_group_policy: str = "File",
) -> dict[str, Any]:
    """A CSIDriver as a driver installer ships it (like the hostpath driver's driverinfo)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": name},
        "spec": {
            "attachRequired": attach_required,
            "podInfoOnMount": pod_info_on_mount,
            "storageCapacity": storage_capacity,
            "fsGroupPolicy": fs_group_policy,
            "volumeLifecycleModes": ["Persistent", "Ephemeral"],
        },
    }


def storage_class(
    name: str,
    provisioner: str = DEFAULT_DRIVER,
    *,
    binding_mode: str = "Immediate",
    reclaim_policy: str = "Delete",
    parameters: dict[str, str] | None = None,
    allow_expansion: bool = True,
) -> dict[str, Any]:
    """A StorageClass for ``provisioner``."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": binding_mode,
        "reclaimPolicy": reclaim_policy,
        "allowVolumeExpansion": allow_expansion,
        "parameters": dict(parameters or {}),
    }


def pvc(
    name: str,
    storage_class_name: str,
    size: str = "1Mi",
    access_modes: tuple[str, ...] = ("ReadWriteOnce",),
    volume_mode: str = "Filesystem",
) -> dict[str, Any]:
    """A PersistentVolumeClaim of ``size`` in ``storage_class_name``."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": list(access_modes),
            "storageClassName": storage_class_name,
            "volumeMode": volume_mode,
            "resources": {"requests": {"storage": size}},
        },
    }


def pod(name: str, claims: list[str], node_name: str | None = None) -> dict[str, Any]:
    """A Pod mounting ``claims``; it never runs (no kubelet) but schedules and attaches."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "volumeMounts": [{"name": c, "mountPath": f"/data/{c}"} for c in claims],
            }
        ],
        "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims],
        "terminationGracePeriodSeconds": 0,
    }
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
