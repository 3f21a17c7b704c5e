"""Test helpers: object builders and a synchronous in-memory executor of attacher actions.

The executor follows the protocol documented in csi_sidecars.attacher.actions, applies the
patches with the kube layer's JSON-patch / merge-patch appliers (the same the fake API server
uses), and records every API write and CSI call in order, so tests can assert the exact
sequence the way the Go attacher's framework tests assert API actions.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from csi_sidecars.attacher import actions as a
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.decide import attach_outcome, decide_va, detach_outcome, step_failed
from csi_sidecars.attacher.objects import secret_data
from csi_sidecars.attacher.patches import Patch
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.patch import apply_merge_patch
from csi_sidecars.kube.resources import ApiError

DRIVER = "hostpath.csi.k8s.io"
FINALIZER = "external-attacher/hostpath-csi-k8s-io"
NOW = dt.datetime(2026, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
NOW_TEXT = "2026-05-01T12:30:45Z"


def rpc_error(code: grpc.StatusCode, details: str = "boom") -> grpc.aio.AioRpcError:
    """A gRPC error as the aio client raises it."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def make_va(
    name: str = "va1",
    *,
    pv: str | None = "pv1",
    node: str = "node1",
    attacher: str = DRIVER,
    attached: bool = False,
    finalizers: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
    inline: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A VolumeAttachment dict as the API server returns it."""
    meta: dict[str, Any] = {"name": name, "resourceVersion": "10", "uid": "uid-" + name}
    if finalizers is not None:
        meta["finalizers"] = list(finalizers)
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    if deleting:
        meta["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    source: dict[str, Any] = {}
    if pv is not None:
        source["persistentVolumeName"] = pv
    if inline is not None:
        source["inlineVolumeSpec"] = inline
    va: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": meta,
        "spec": {"attacher": attacher, "nodeName": node, "source": source},
        "status": {"attached": attached, **(status or {})},
    }
    return va


def make_pv(
    name: str = "pv1",
    *,
    handle: str = "vol-1",
    access_modes: list[str] | None = None,
    block: bool = False,
    fs_type: str | None = None,
    read_only: bool | None = None,
    attributes: dict[str, str] | None = None,
    mount_options: list[str] | None = None,
    secret: tuple[str, str] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
    claim: tuple[str, str] | None = ("default", "claim1"),
) -> dict[str, Any]:
    """A CSI PersistentVolume dict."""
    csi: dict[str, Any] = {"driver": DRIVER, "volumeHandle": handle}
    if fs_type is not None:
        csi["fsType"] = fs_type
    if read_only is not None:
        csi["readOnly"] = read_only
    if attributes is not None:
        csi["volumeAttributes"] = dict(attributes)
    if secret is not None:
        csi["controllerPublishSecretRef"] = {"namespace": secret[0], "name": secret[1]}
    spec: dict[str, Any] = {
        "accessModes": list(access_modes or ["ReadWriteOnce"]),
        "csi": csi,
        "volumeMode": "Block" if block else "Filesystem",
    }
    if mount_options is not None:
        spec["mountOptions"] = list(mount_options)
    if claim is not None:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    meta: dict[str, Any] = {"name": name, "resourceVersion": "5"}
    if finalizers is not None:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": spec}


def make_csinode(node: str = "node1", node_id: str = "csi-node-1", driver: str = DRIVER) -> Any:
    """A CSINode dict with one driver entry."""
    return {
        "metadata": {"name": node},
        "spec": {"drivers": [{"name": driver, "nodeID": node_id, "topologyKeys": None}]},
    }


def make_secret(data: dict[str, str]) -> dict[str, Any]:
    """A Secret dict with base64 data."""
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


@dataclass
class World:
    """The cluster and driver state one executor run sees, and the log of what it did."""

    cfg: AttacherConfig
    va: dict[str, Any] | None
    pv: dict[str, Any] | None
    csinode: dict[str, Any] | None = None
    csinode_synced: bool = True
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    publish: Callable[[Any], dict[str, str]] = lambda req: {"devicePath": "/dev/x"}
    unpublish: Callable[[Any], None] = lambda req: None
    fail_patch: Callable[[Patch], ApiError | None] = lambda p: None
    log: list[tuple[Any, ...]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    def _apply(self, patch: Patch) -> None:
        err = self.fail_patch(patch)
        if err is not None:
            raise err
        target = self.va if patch.kind == "VolumeAttachment" else self.pv
        if target is None:
            if patch.ignore_not_found:
                self.log.append(("not-found", patch.kind, patch.subresource))
                return
            raise ApiError(404, "NotFound", f"{patch.kind} {patch.name} not found")
        if patch.type == "json":
            new = apply_json_patch(target, patch.body)
        else:
            new = apply_merge_patch(target, patch.body)
        new = copy.deepcopy(new)
        new["metadata"]["resourceVersion"] = str(int(new["metadata"]["resourceVersion"]) + 1)
        label = "patch-status" if patch.subresource == "status" else "patch"
        self.log.append((label, patch.kind, patch.type))
        if patch.kind == "VolumeAttachment":
            # An object being deleted disappears with its last finalizer.
            meta = new["metadata"]
            self.va = None if meta.get("deletionTimestamp") and not meta.get("finalizers") else new
        else:
            self.pv = new

    def _write(self, action: Any) -> str:
        try:
            self._apply(action.patch)
        except ApiError as exc:
            assert self.va is not None
            failed = step_failed(self.va, action, str(exc), cfg=self.cfg, now=NOW, pv=self.pv)
            if failed is not None:
                self._write(failed)
            return "requeue"
        self.events.extend(getattr(action, "events", ()))
        return "requeue" if action.retry else "forget"

    def sync(self, force_sync: bool = False, max_steps: int = 20) -> str:
        """Process the VA key once; returns forget / requeue / wait / gone."""
        secrets: dict[str, str] | None = None
        secrets_error: str | None = None
        for _ in range(max_steps):
            if self.va is None:
                return "gone"
            action = decide_va(
                self.va,
                cfg=self.cfg,
                pv=self.pv,
                csinode=self.csinode,
                now=NOW,
                csinode_synced=self.csinode_synced,
                secrets=secrets,
                secrets_error=secrets_error,
                force_sync=force_sync,
            )
            if isinstance(action, a.Ignore):
                return "forget"
            if isinstance(action, a.WaitForCSINode):
                return "wait"
            if isinstance(action, a.LoadSecrets):
                self.log.append(("get-secret", action.ref.namespace, action.ref.name))
                secret = self.secrets.get((action.ref.namespace, action.ref.name))
                if secret is None:
                    secrets_error = f'secrets "{action.ref.name}" not found'
                else:
                    secrets = secret_data(secret)
                continue
            if isinstance(action, a.AddPVFinalizer | a.AddVAFinalizer | a.AnnotateVA):
                if self._write(action) == "requeue":
                    return "requeue"
                continue
            if isinstance(action, a.Attach):
                self.log.append(("publish", action.volume_handle, action.node_id))
                self.requests.append(action.request)
                try:
                    ctx = self.publish(action.request)
                except grpc.RpcError as exc:
                    return self._write(
                        attach_outcome(
                            self.va, action, cfg=self.cfg, now=NOW, error=exc, pv=self.pv
                        )
                    )
                return self._write(
                    attach_outcome(self.va, action, cfg=self.cfg, now=NOW, publish_context=ctx)
                )
            if isinstance(action, a.Detach):
                self.log.append(("unpublish", action.volume_handle, action.node_id))
                self.requests.append(action.request)
                error: BaseException | None = None
                try:
                    self.unpublish(action.request)
                except grpc.RpcError as exc:
                    error = exc
                outcome = detach_outcome(
                    self.va, action, cfg=self.cfg, now=NOW, error=error, pv=self.pv
                )
                result = "forget"
                for step in outcome:
                    result = self._write(step)
                    if result == "requeue":
                        break
                return result
            return self._write(action)
        raise AssertionError("too many steps")
