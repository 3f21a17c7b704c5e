"""Differential: the Go csi-resizer v2.2.0 and ours, same flags, same steps, same PVC/PV fields.

Each implementation gets its own driver (same flags) and namespace; names, handles and times are
replaced before the objects are compared. Both run with ``--feature-gates=AnnotateFsResize=true``
(alpha and off in the v2.2.0 source, beta and on in ours), so the flags are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.resizer import names as n
from tests.e2e.conftest import require
from tests.e2e.resizer_support import (
    FAST,
    PV_PATH,
    ResizeDriver,
    bound_claim,
    ensure_class,
    events,
    modify_state,
    request,
    resize_state,
    set_class,
    start_driver,
    wait_claim,
)

TIMES = ("lastTransitionTime", "lastProbeTime")


def comparable(obj: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The fields the resizer owns, times dropped, test-specific names replaced."""
    meta = obj["metadata"]
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith("pv.kubernetes.io/")
    }
    annotations.pop(n.RESIZER_ANNOTATION, None)  # written by kube-controller-manager
    if obj["kind"] == "PersistentVolume":
        body: dict[str, Any] = {
            "annotations": annotations,
            "capacity": obj["spec"]["capacity"],
            "class": obj["spec"].get("volumeAttributesClassName"),
        }
    else:
        status = dict(obj.get("status") or {})
        status["conditions"] = [
            {k: v for k, v in c.items() if k not in TIMES} for c in status.get("conditions") or []
        ]
        body = {"annotations": annotations, "status": status}
    text = json.dumps(body, sort_keys=True)
    for old, new in sorted(names.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    out: dict[str, Any] = json.loads(text)
    return out


async def _scenario(
    api: RawApi, drv: ResizeDriver, namespace: str, sidecar: Any, impl: str
) -> dict[str, Any]:
    gold, bad = f"{namespace}-gold", f"{namespace}-bad"
    await ensure_class(api, gold, drv.name, iops="3000")
    await ensure_class(api, bad, drv.name, color="red")
    await sidecar(
        "resizer",
        *FAST,
        f"--csi-address={drv.socket}",
        "--feature-gates=AnnotateFsResize=true",
        implementation=impl,
    )
    pv_a, handle_a = await bound_claim(api, drv, namespace, "a")
    pv_b, handle_b = await bound_claim(api, drv, namespace, "b")
    names = {
        pv_a: "PV-A",
        pv_b: "PV-B",
        handle_a: "H-A",
        handle_b: "H-B",
        gold: "GOLD",
        bad: "BAD",
        drv.name: "DRIVER",
        namespace: "NS",
    }
    snaps: dict[str, Any] = {}

    async def snap(label: str, claim: str, pv: str) -> None:
        pvc = await api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
        snaps[f"{label}/pvc"] = comparable(pvc, names)
        snaps[f"{label}/pv"] = comparable(await api.get(f"{PV_PATH}/{pv}"), names)

    await request(api, namespace, "a", "2Gi")
    await wait_claim(
        api, namespace, "a", lambda p: resize_state(p) == n.NODE_RESIZE_PENDING, "a 2Gi"
    )
    await snap("expanded", "a", pv_a)

    await set_class(api, namespace, "a", gold)
    await wait_claim(
        api,
        namespace,
        "a",
        lambda p: p["status"].get("currentVolumeAttributesClassName") == gold,
        "gold",
    )
    await snap("gold", "a", pv_a)

    await set_class(api, namespace, "a", bad)
    await wait_claim(api, namespace, "a", lambda p: modify_state(p) == n.MODIFY_INFEASIBLE, "bad")
    await snap("infeasible-class", "a", pv_a)

    await set_class(api, namespace, "a", gold)
    await wait_claim(api, namespace, "a", lambda p: "modifyVolumeStatus" not in p["status"], "back")
    await snap("rolled-back", "a", pv_a)

    await request(api, namespace, "b", "10Gi")
    await wait_claim(
        api, namespace, "b", lambda p: resize_state(p) == n.CONTROLLER_RESIZE_INFEASIBLE, "b 10Gi"
    )
    await snap("infeasible-size", "b", pv_b)
    await request(api, namespace, "b", "3Gi")
    await wait_claim(
        api, namespace, "b", lambda p: resize_state(p) == n.NODE_RESIZE_PENDING, "b 3Gi"
    )
    await snap("recovered", "b", pv_b)

    reasons: set[str] = set()
    for claim in ("a", "b"):
        reasons |= {e["reason"] for e in await events(api, namespace, claim)}
    snaps["event-reasons"] = sorted(reasons)
    sources = {
        e["source"].get("component", "").replace(drv.name, "DRIVER")
        for e in await events(api, namespace, "a")
        if e["reason"] == n.VOLUME_RESIZING
    }
    snaps["event-source"] = sorted(sources)
    return snaps


async def test_same_objects_as_go_resizer(
    control_plane: ControlPlane, api: RawApi, sidecar: Any, tmp_path: Path
) -> None:
    require("csi-resizer")
    results: dict[str, dict[str, Any]] = {}
    for impl in ("go", "python"):
        namespace = f"diff-{impl}"
        await control_plane.create_namespace(namespace)
        work = tmp_path / impl
        work.mkdir()
        drv = await start_driver(control_plane, work, "--max-volume-size=4Gi")
        try:
            results[impl] = await _scenario(api, drv, namespace, sidecar, impl)
        finally:
            await drv.close()
    go, ours = results["go"], results["python"]
    assert go.keys() == ours.keys()
    for key in go:
        assert ours[key] == go[key], key
