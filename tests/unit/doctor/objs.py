"""Builders of the API objects doctor's unit tests put into snapshots (plain dicts)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.doctor.report import Finding, Severity
from csi_sidecars.doctor.snapshot import ClusterSnapshot

NOW = 1_800_000_000.0
DRIVER = "hostpath.csi.k8s.io"
NS = "app"


def stamp(ago: float) -> str:
    """An RFC 3339 timestamp ``ago`` seconds before NOW."""
    return dt.datetime.fromtimestamp(NOW - ago, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(ago: float) -> str:
    """A MicroTime ``ago`` seconds before NOW."""
    return dt.datetime.fromtimestamp(NOW - ago, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _meta(name: str, namespace: str = "", age: float = 600, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "creationTimestamp": stamp(age)}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def snapshot(**items: Any) -> ClusterSnapshot:
    """A snapshot at NOW; ``unavailable=`` passes through."""
    unavailable = items.pop("unavailable", None)
    return ClusterSnapshot.build(NOW, unavailable, **items)


def storage_class(
    name: str = "fast",
    provisioner: str = DRIVER,
    mode: str = "Immediate",
    default: bool = False,
    age: float = 3600,
    **extra: Any,
) -> dict[str, Any]:
    meta = _meta(name, age=age)
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {
        "metadata": meta,
        "provisioner": provisioner,
        "volumeBindingMode": mode,
        "reclaimPolicy": "Delete",
        **extra,
    }


def csidriver(name: str = DRIVER, attach: bool = True, capacity: bool = False) -> dict[str, Any]:
    return {
        "metadata": _meta(name),
        "spec": {"attachRequired": attach, "storageCapacity": capacity},
    }


def node(
    name: str = "node-1", labels: dict[str, str] | None = None, ready: bool = True
) -> dict[str, Any]:
    return {
        "metadata": _meta(
            name, labels={"topology.hostpath.csi/node": name} if labels is None else labels
        ),
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "message": "kubelet is posting ready status"
                    if ready
                    else "Kubelet stopped posting node status.",
                }
            ]
        },
    }


def csinode(
    name: str = "node-1", drivers: list[str] | None = None, keys: list[str] | None = None
) -> dict[str, Any]:
    names = [DRIVER] if drivers is None else drivers
    topology = ["topology.hostpath.csi/node"] if keys is None else keys
    return {
        "metadata": _meta(name),
        "spec": {
            "drivers": [
                {"name": d, "nodeID": name, **({"topologyKeys": topology} if topology else {})}
                for d in names
            ]
        },
    }


def pvc(
    name: str = "data",
    sc: str | None = "fast",
    phase: str = "Pending",
    age: float = 600,
    size: str = "1Gi",
    annotations: dict[str, str] | None = None,
    namespace: str = NS,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        **spec,
    }
    if sc is not None:
        body["storageClassName"] = sc
    meta = _meta(name, namespace, age)
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": body, "status": {"phase": phase}}


def pv(
    name: str = "pvc-1",
    driver: str = DRIVER,
    phase: str = "Bound",
    claim: tuple[str, str] | None = (NS, "data"),
    policy: str = "Delete",
    sc: str = "fast",
    size: str = "1Gi",
    **meta: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": policy,
        "storageClassName": sc,
        "csi": {"driver": driver, "volumeHandle": f"handle-{name}"},
    }
    if claim is not None:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"metadata": _meta(name, **meta), "spec": spec, "status": {"phase": phase}}


def va(
    name: str = "csi-abc",
    pv_name: str = "pvc-1",
    node_name: str = "node-1",
    driver: str = DRIVER,
    attached: bool = False,
    age: float = 600,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": _meta(name, age=age),
        "spec": {
            "attacher": driver,
            "nodeName": node_name,
            "source": {"persistentVolumeName": pv_name},
        },
        "status": {"attached": attached, **status},
    }


def lease(
    name: str,
    ago: float = 2,
    holder: str = "csi-0",
    namespace: str = "kube-system",
    duration: int = 15,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseDurationSeconds": duration, "renewTime": micro(ago)}
    if holder:
        spec["holderIdentity"] = holder
    meta = _meta(name, namespace)
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    namespace: str = "",
    warning: bool = False,
    ago: float = 5,
    component: str = "",
    count: int = 1,
) -> dict[str, Any]:
    ns = namespace or "default"
    return {
        "metadata": _meta(f"{name}.{reason}.{int(ago)}", ns),
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "lastTimestamp": stamp(ago),
        "count": count,
        "source": {"component": component},
    }


def pod(
    name: str, claims: list[str], namespace: str = NS, node_name: str = "", unschedulable: str = ""
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
    }
    if node_name:
        spec["nodeName"] = node_name
    status: dict[str, Any] = {"phase": "Pending"}
    if unschedulable:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        ]
    return {"metadata": _meta(name, namespace), "spec": spec, "status": status}


def journal(records: list[dict[str, Any]], driver: str = DRIVER) -> dict[str, Any]:
    """Our provisioner's journal Lease holding ``records`` (its documented format)."""
    raw = json.dumps({"v": 1, "records": records}).encode()
    value = base64.b64encode(zlib.compress(raw)).decode()
    cleaned = driver.replace("/", "-").lower()
    return lease(
        f"{cleaned}-provisioner-journal",
        holder="",
        annotations={"provisioner.csi-sidecars.io/journal": value},
    )


def deleting(
    obj: dict[str, Any], ago: float = 300, finalizers: list[str] | None = None
) -> dict[str, Any]:
    """``obj`` with a deletion timestamp ``ago`` seconds old and the finalizers."""
    obj["metadata"]["deletionTimestamp"] = stamp(ago)
    obj["metadata"]["finalizers"] = list(finalizers or [])
    return obj


def provisioner_lease(ago: float = 2, holder: str = "csi-0") -> dict[str, Any]:
    return lease(DRIVER.replace(".", "-"), ago=ago, holder=holder)


def attacher_lease(ago: float = 2, holder: str = "csi-0") -> dict[str, Any]:
    return lease("external-attacher-leader-" + DRIVER.replace(".", "-"), ago=ago, holder=holder)


def healthy_base(**extra: Any) -> dict[str, Any]:
    """Keyword lists of a cluster where the driver is installed and its sidecars run."""
    items: dict[str, Any] = {
        "storage_classes": [storage_class()],
        "csi_drivers": [csidriver()],
        "csi_nodes": [csinode()],
        "nodes": [node()],
        "leases": [provisioner_lease(), attacher_lease()],
        "pods": [],
        "events": [],
    }
    for key, value in extra.items():
        items[key] = value
    return items


@dataclass
class Case:
    """One row of a checker table: a snapshot and the diagnosis it must give.

    Attributes:
        says: substrings of the summary plus next step.
        evidence: substrings that some evidence message must contain.
    """

    id: str
    build: Callable[[], ClusterSnapshot]
    code: str
    severity: Severity = Severity.PROBLEM
    says: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


def check_case(found: Finding, case: Case) -> None:
    """Assert that ``found`` is the diagnosis ``case`` wants."""
    assert (found.code, found.severity) == (case.code, case.severity), found
    text = f"{found.summary} {found.next_step}"
    for part in case.says:
        assert part in text, (part, text)
    messages = [e.message for e in found.evidence]
    for part in case.evidence:
        assert any(part in m for m in messages), (part, messages)
