"""PVC and PV bodies for the resizer's unit tests."""

from __future__ import annotations

from typing import Any

from csi_sidecars.kube.objects import JsonDict

DRIVER = "resize.csi.test"
NS = "ns1"
UID = "uid-1"


def pvc(
    spec: str = "2Gi",
    capacity: str = "1Gi",
    allocated: str | None = None,
    state: str | None = None,
    *,
    name: str = "claim1",
    conditions: list[JsonDict] | None = None,
    annotations: dict[str, str] | None = None,
    vac: str | None = None,
    current_vac: str | None = None,
    modify: dict[str, Any] | None = None,
    phase: str = "Bound",
) -> JsonDict:
    status: JsonDict = {"phase": phase, "capacity": {"storage": capacity}}
    if allocated is not None:
        status["allocatedResources"] = {"storage": allocated}
    if state is not None:
        status["allocatedResourceStatuses"] = {"storage": state}
    if conditions:
        status["conditions"] = conditions
    if current_vac is not None:
        status["currentVolumeAttributesClassName"] = current_vac
    if modify is not None:
        status["modifyVolumeStatus"] = modify
    body: JsonDict = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS, "uid": UID, "resourceVersion": "10"},
        "spec": {"volumeName": "pv1", "resources": {"requests": {"storage": spec}}},
        "status": status,
    }
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    if vac is not None:
        body["spec"]["volumeAttributesClassName"] = vac
    return body


def pv(
    size: str = "1Gi",
    *,
    driver: str = DRIVER,
    uid: str = UID,
    annotations: dict[str, str] | None = None,
    secret: tuple[str, str] | None = None,
    block: bool = False,
) -> JsonDict:
    csi: JsonDict = {"driver": driver, "volumeHandle": "vol-1", "fsType": "ext4"}
    if secret is not None:
        csi["controllerExpandSecretRef"] = {"namespace": secret[0], "name": secret[1]}
    body: JsonDict = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv1", "resourceVersion": "5"},
        "spec": {
            "capacity": {"storage": size},
            "csi": csi,
            "accessModes": ["ReadWriteOnce"],
            "mountOptions": ["noatime"],
            "volumeMode": "Block" if block else "Filesystem",
            "claimRef": {"namespace": NS, "name": "claim1", "uid": uid},
        },
    }
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    return body


def vac(name: str, **params: str) -> JsonDict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttributesClass",
        "metadata": {"name": name},
        "driverName": DRIVER,
        "parameters": dict(params),
    }
