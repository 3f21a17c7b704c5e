"""Builders of raw API objects for the provisioner unit tests."""

from __future__ import annotations

from typing import Any

from csi_sidecars.controller import DriverInfo
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.provisioner.decide.request import ProvisionerOptions

DRIVER = "hostpath.csi.k8s.io"
UID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"

Cap = csi_pb2.ControllerServiceCapability.RPC
Plugin = csi_pb2.PluginCapability.Service


def pvc(
    *,
    name: str = "data",
    namespace: str = "default",
    uid: str = UID,
    annotations: dict[str, str] | None = None,
    storage: str | None = "1Gi",
    access_modes: list[str] | None = None,
    storage_class: str | None = "fast",
    **spec: Any,
) -> dict[str, Any]:
    ann = {"volume.kubernetes.io/storage-provisioner": DRIVER}
    if annotations is not None:
        ann = annotations
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"] if access_modes is None else access_modes,
        **spec,
    }
    if storage is not None:
        body["resources"] = {"requests": {"storage": storage}}
    if storage_class is not None:
        body["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "42",
            "annotations": ann,
        },
        "spec": body,
    }


def sc(
    *,
    name: str = "fast",
    parameters: dict[str, str] | None = None,
    provisioner: str = DRIVER,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "uid": "sc-uid-1"},
        "provisioner": provisioner,
        "parameters": parameters or {},
        "reclaimPolicy": fields.pop("reclaimPolicy", "Delete"),
        **fields,
    }


def options(**kw: Any) -> ProvisionerOptions:
    """Options for a driver with ``plugin_capabilities`` / ``controller_capabilities``."""
    plugin = frozenset(kw.pop("plugin_capabilities", {Plugin.CONTROLLER_SERVICE}))
    controller = frozenset(kw.pop("controller_capabilities", {Cap.CREATE_DELETE_VOLUME}))
    return ProvisionerOptions(DriverInfo(DRIVER, plugin, controller), **kw)


def csinode(name: str, keys: list[str] | None, driver: str = DRIVER) -> dict[str, Any]:
    drivers = [] if keys is None else [{"name": driver, "nodeID": name, "topologyKeys": keys}]
    return {"metadata": {"name": name}, "spec": {"drivers": drivers}}


def node(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}
