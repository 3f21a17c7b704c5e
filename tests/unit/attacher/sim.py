"""Test helpers: object builders and a synchronous in-memory performer of attacher plans.

:class:`World` performs a plan the way :class:`csi_sidecars.controller.perform.Performer` does
(in order; an action with a continuation ends its plan; the default error policy: a stale JSON
patch -> decide again, 404 on a ``missing_ok`` write -> go on, else retry), applies the patches
with the kube layer's JSON-patch / merge-patch appliers (the same the fake API server uses), and
records every API write, Secret read and CSI call in order, so tests can assert the exact
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

from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.decide import decide_va
from csi_sidecars.controller import actions as a
from csi_sidecars.controller.driver import DriverInfo
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.objects import Event, name, namespace
from csi_sidecars.kube.patch import apply_merge_patch
from csi_sidecars.kube.resources import VOLUME_ATTACHMENTS, ApiError

DRIVER = "hostpath.csi.k8s.io"
FINALIZER = "external-attacher/hostpath-csi-k8s-io"
NOW = dt.datetime(2026, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
NOW_TEXT = "2026-05-01T12:30:45Z"

RPC = csi_pb2.ControllerServiceCapability.RPC
SVC = csi_pb2.PluginCapability.Service


def clock() -> dt.datetime:
    """The fixed clock of the tests."""
    return NOW


def config(*capabilities: int, trivial: bool = False, **kwargs: Any) -> AttacherConfig:
    """An AttacherConfig for a driver with PUBLISH_UNPUBLISH_VOLUME and ``capabilities``.

    ``trivial``: a driver without a Controller service.
    """
    if trivial:
        return AttacherConfig(DriverInfo(DRIVER), **kwargs)
    ctrl = frozenset({RPC.PUBLISH_UNPUBLISH_VOLUME, *capabilities})
    return AttacherConfig(DriverInfo(DRIVER, frozenset({SVC.CONTROLLER_SERVICE}), ctrl), **kwargs)


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


def make_pod(
    pod_name: str, ns: str = "default", node: str = "node1", *claims: str
) -> dict[str, Any]:
    """A Pod dict on ``node`` mounting the PVCs ``claims`` (and a ConfigMap)."""
    volumes: list[dict[str, Any]] = [
        {"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims
    ]
    volumes.append({"name": "cfg", "configMap": {"name": "x"}})
    return {
        "metadata": {"name": pod_name, "namespace": ns},
        "spec": {"nodeName": node, "volumes": volumes},
    }


def default_error(exc: ApiError, action: a.Action) -> a.Plan | None:
    """The Performer's default error policy (None: go on with the plan)."""
    if exc.not_found and getattr(action, "missing_ok", False):
        return None
    if exc.conflict or (isinstance(action, a.Patch) and action.type == "json" and exc.invalid):
        return (a.Redecide(exc.message),)
    return (a.Retry(exc.message),)


OUTCOMES = {a.Done: "forget", a.Retry: "requeue", a.RetryAfter: "wait", a.Redecide: "redecide"}


@dataclass
class World:
    """The cluster and driver state one sync sees, and the log of what it did."""

    cfg: AttacherConfig
    va: dict[str, Any] | None
    pv: dict[str, Any] | None
    csinode: dict[str, Any] | None = None
    csinode_synced: bool = True
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    publish: Callable[[Any], dict[str, str]] = lambda req: {"devicePath": "/dev/x"}
    unpublish: Callable[[Any], None] = lambda req: None
    fail_patch: Callable[[a.Patch], ApiError | None] = lambda p: None
    log: list[tuple[Any, ...]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    #: (event, kind of the object it is on, that object's name)
    events: list[tuple[Event, str, str]] = field(default_factory=list)
    pod_lists: list[tuple[str | None, str | None]] = field(default_factory=list)
    #: decide calls, and continuations followed, over all syncs
    visits: int = 0
    continuations: int = 0
    failed: bool = False

    def _patch(self, patch: a.Patch) -> dict[str, Any]:
        err = self.fail_patch(patch)
        if err is not None:
            raise err
        kind = patch.resource.kind
        target = self.va if patch.resource == VOLUME_ATTACHMENTS else self.pv
        if target is None:
            if patch.missing_ok:
                self.log.append(("not-found", kind, patch.subresource))
            raise ApiError(404, "NotFound", f"{kind} {patch.name} not found")
        if patch.type == "json":
            new = apply_json_patch(target, patch.body)
        else:
            new = apply_merge_patch(target, patch.body)
        new = copy.deepcopy(new)
        new["metadata"]["resourceVersion"] = str(int(new["metadata"]["resourceVersion"]) + 1)
        label = "patch-status" if patch.subresource == "status" else "patch"
        self.log.append((label, kind, patch.type))
        if patch.resource == VOLUME_ATTACHMENTS:
            # An object being deleted disappears with its last finalizer.
            meta = new["metadata"]
            self.va = None if meta.get("deletionTimestamp") and not meta.get("finalizers") else new
        else:
            self.pv = new
        return new

    def _one(self, action: a.Action) -> a.Plan | None:
        if isinstance(action, a.Emit):
            self.events.append((action.event, (action.resource or VOLUME_ATTACHMENTS).kind,
                                name(action.target)))  # fmt: skip
            return None
        if isinstance(action, a.Call):
            method = self.publish if action.method == "ControllerPublishVolume" else self.unpublish
            what = "publish" if action.method == "ControllerPublishVolume" else "unpublish"
            self.log.append((what, action.request.volume_id, action.request.node_id))
            self.requests.append(action.request)
            self.continuations += 1
            try:
                reply = method(action.request)
            except grpc.RpcError as exc:
                return action.on_error(exc)
            if what == "publish":
                reply = csi_pb2.ControllerPublishVolumeResponse(publish_context=reply)
            return action.then(reply)
        try:
            if isinstance(action, a.Patch):
                new = self._patch(action)
                if action.then is None:
                    return None
                self.continuations += 1
                return action.then(new)
            if isinstance(action, a.Read):
                self.log.append(("get-secret", action.namespace, action.name))
                self.continuations += 1
                return action.then(self.secrets.get((action.namespace or "", action.name)))
            if isinstance(action, a.List):
                self.pod_lists.append((action.namespace, action.field_selector))
                node = (action.field_selector or "").removeprefix("spec.nodeName=")
                found = [
                    p
                    for p in self.pods
                    if namespace(p) == action.namespace and p["spec"]["nodeName"] == node
                ]
                self.continuations += 1
                return action.then(found)
        except ApiError as exc:
            self.failed = True
            handler = getattr(action, "on_error", None)
            return handler(exc) if handler is not None else default_error(exc, action)
        raise AssertionError(f"unexpected action {action!r}")

    def perform(self, plan: a.Plan) -> a.Outcome:
        """Perform ``plan`` and the plans its continuations return; the outcome."""
        pending = list(plan)
        while pending:
            action = pending.pop(0)
            if isinstance(action, a.Done | a.Retry | a.RetryAfter | a.Redecide):
                return action
            self.failed = False
            following = self._one(action)
            if following is not None:
                # A failure replaces the rest of the plan; a continuation must end its plan.
                assert self.failed or not pending, f"actions after a continuation: {pending!r}"
                pending = list(following)
        return a.Done()

    def sync(self, force_sync: bool = False, max_redecides: int = 3) -> str:
        """Process the VA key once; returns forget / requeue / wait / gone."""
        for _ in range(max_redecides + 1):
            if self.va is None:
                return "gone"
            self.visits += 1
            plan = decide_va(
                self.va,
                cfg=self.cfg,
                pv=self.pv,
                csinode=self.csinode,
                clock=clock,
                csinode_synced=self.csinode_synced,
                force_sync=force_sync,
            )
            result = OUTCOMES[type(self.perform(plan))]
            if result != "redecide":
                return result
        return "requeue"
