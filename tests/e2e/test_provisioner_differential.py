"""Differential: for each StorageClass/claim case, the PV our provisioner creates equals the PV the
Go external-provisioner v6.3 creates from the same input, names, UIDs, times and identity aside;
for refused claims, the events are the same (``Provisioning`` first, then ``ProvisioningFailed``).

Both run with the same flags against the same driver, one after the other, each on claims of its
own namespace (identical names); namespaces are normalised away before comparing.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from csi_sidecars.provisioner.decide import strings
from tests.e2e.conftest import require
from tests.e2e.provisioner_support import (
    PV,
    ProvDriver,
    claims_path,
    delete_contents,
    driver_snapshot,
    events_of,
    make_class,
    start_driver,
    static_snapshot,
    stop_driver,
    wait_bound,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

FLAGS = (
    "--timeout=10s",
    "--retry-interval-start=200ms",
    "--default-fstype=ext4",
    "--extra-create-metadata",
    "--kube-api-qps=50",
    "--kube-api-burst=100",
)
SECRET_PARAMS = {
    "csi.storage.k8s.io/provisioner-secret-name": "${pvc.name}-prov",
    "csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
    "csi.storage.k8s.io/controller-publish-secret-name": "publish",
    "csi.storage.k8s.io/controller-publish-secret-namespace": "${pvc.namespace}",
    "csi.storage.k8s.io/node-stage-secret-name": "${pvc.annotations['team']}-stage",
    "csi.storage.k8s.io/node-stage-secret-namespace": "${pvc.namespace}",
    "csi.storage.k8s.io/node-publish-secret-name": "${pv.name}",
    "csi.storage.k8s.io/node-publish-secret-namespace": "${pvc.namespace}",
    "csi.storage.k8s.io/controller-expand-secret-name": "expand",
    "csi.storage.k8s.io/controller-expand-secret-namespace": "${pvc.namespace}",
    "csi.storage.k8s.io/node-expand-secret-name": "expand",
    "csi.storage.k8s.io/node-expand-secret-namespace": "${pvc.namespace}",
}

Mutate = Callable[[dict[str, Any]], None]


def _claim(name: str, sc: str, size: str = "5Mi", mutate: Mutate | None = None) -> dict[str, Any]:
    body = objects.pvc(name, sc, size=size)
    if mutate is not None:
        mutate(body)
    return body


def _block_multi(body: dict[str, Any]) -> None:
    body["spec"]["volumeMode"] = "Block"
    body["spec"]["accessModes"] = ["ReadWriteMany", "ReadOnlyMany"]


def _team(body: dict[str, Any]) -> None:
    body["metadata"]["annotations"] = {"team": "blue"}


def _restore_of(snapshot: str) -> Mutate:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["dataSource"] = {
            "apiGroup": strings.SNAPSHOT_API_GROUP,
            "kind": "VolumeSnapshot",
            "name": snapshot,
        }

    return mutate


def _clone_of(source: str) -> Mutate:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["dataSource"] = {"kind": "PersistentVolumeClaim", "name": source}

    return mutate


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def diff_driver(control_plane: ControlPlane) -> AsyncIterator[ProvDriver]:
    """The driver both provisioners use."""
    drv = await start_driver(control_plane, prefix="diff")
    try:
        yield drv
    finally:
        await stop_driver(control_plane, drv)


async def _classes(api: RawApi, driver: str) -> dict[str, str]:
    topo = [{"matchLabelExpressions": [{"key": objects.TOPOLOGY_KEY, "values": ["node-1", "x"]}]}]
    return {
        "plain": await make_class(api, driver),
        "retain": await make_class(
            api,
            driver,
            reclaim_policy="Retain",
            parameters={"csi.storage.k8s.io/fstype": "xfs", "speed": "fast"},
            mountOptions=["noatime", "ro"],
        ),
        "secrets": await make_class(api, driver, parameters=SECRET_PARAMS),
        "late": await make_class(api, driver, binding_mode="WaitForFirstConsumer"),
        "topology": await make_class(api, driver, allowedTopologies=topo),
    }


#: Claims every provisioner refuses: name -> mutation. Their events are compared.
REFUSED: dict[str, Mutate] = {
    "picky": lambda body: body["spec"].__setitem__("selector", {"matchLabels": {"a": "b"}}),
}

Events = set[tuple[str, str, str]]


async def _refusals(api: RawApi, ns: str, name: str) -> Events:
    """The (type, reason, message) of the events about ``name`` once it was refused."""

    async def refused() -> Events | None:
        items = await events_of(api, ns, name, "ProvisioningFailed")
        if not items:
            return None
        listed = await api.get(
            f"/api/v1/namespaces/{ns}/events", fieldSelector=f"involvedObject.name={name}"
        )
        # ExternalProvisioning comes from kube-controller-manager, not from a provisioner.
        return {
            (e["type"], e["reason"], e["message"].replace(ns, "NS"))
            for e in listed["items"]
            if e["reason"] != "ExternalProvisioning"
        }

    found: Events = await poll_until(refused, 60, f"{name} to be refused", interval=0.3)
    return found


async def _provision(
    cp: ControlPlane, api: RawApi, drv: ProvDriver, impl: str, ns: str, sc: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Events]]:
    """Start ``impl``, provision every case in ``ns``, stop it; return the PVs by case and the
    events of the refused claims."""
    for secret in ("origin-prov", "secret-prov", "publish", "blue-stage", "expand"):
        await api.create(
            f"/api/v1/namespaces/{ns}/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
             "data": {"key": base64.b64encode(b"value").decode()}},
        )  # fmt: skip
    handle = await driver_snapshot(drv, size=1 << 20)
    await static_snapshot(api, ns, "snap", driver=drv.name, handle=handle)
    proc = await cp.start_sidecar(
        "provisioner", *FLAGS, implementation=impl, driver=drv.testbed_driver
    )
    try:
        cases = {
            "origin": _claim("origin", sc["plain"]),
            "retain": _claim("retain", sc["retain"], size="1Gi"),
            "secret": _claim("secret", sc["secrets"], mutate=_team),
            "block": _claim("block", sc["plain"], mutate=_block_multi),
            "late": _claim("late", sc["late"]),
            "topology": _claim("topology", sc["topology"]),
            "restore": _claim("restore", sc["plain"], mutate=_restore_of("snap")),
        }
        for body in cases.values():
            await api.create(claims_path(ns), body)
        for name, mutate in REFUSED.items():
            await api.create(claims_path(ns), _claim(name, sc["plain"], mutate=mutate))
        pod = objects.pod("consumer", ["late"])
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": drv.node}
        await api.create(f"/api/v1/namespaces/{ns}/pods", pod)
        await wait_bound(api, ns, "origin")
        await api.create(claims_path(ns), _claim("clone", sc["plain"], mutate=_clone_of("origin")))
        out = {}
        for case in [*cases, "clone"]:
            pvc = await wait_bound(api, ns, case)
            out[case] = await api.get(f"{PV}/{pvc['spec']['volumeName']}")
        refused = {name: await _refusals(api, ns, name) for name in REFUSED}
        return out, refused
    finally:
        await proc.stop(timeout=10)
        if proc.returncode not in (0, None):
            print(f"----- {impl} provisioner -----\n{proc.log_tail(60)}")


def normalise(pv: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The PV without what legitimately differs between two runs."""
    text = json.dumps(pv).replace(namespace, "NS").replace(pv["metadata"]["name"], "PV-NAME")
    out: dict[str, Any] = json.loads(text)
    meta = out["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    ref = out["spec"]["claimRef"]
    for key in ("uid", "resourceVersion"):
        ref.pop(key, None)
    csi = out["spec"]["csi"]
    csi.pop("volumeHandle", None)
    csi.get("volumeAttributes", {}).pop(strings.PROVISIONER_IDENTITY_KEY, None)
    out["status"].pop("lastPhaseTransitionTime", None)
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where ``a`` and ``b`` differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out.extend(differences(a.get(key), b.get(key), f"{path}.{key}"))
        return out
    return [] if a == b else [f"{path}: ours={a!r} go={b!r}"]


async def test_pvs_match_the_go_provisioner(
    control_plane: ControlPlane, api: RawApi, diff_driver: ProvDriver
) -> None:
    require("csi-provisioner")
    sc = await _classes(api, diff_driver.name)
    tag = diff_driver.name[5:11]
    namespaces = {"go": f"diff-go-{tag}", "ours": f"diff-py-{tag}"}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    refusals: dict[str, dict[str, Events]] = {}
    try:
        for impl, ns in namespaces.items():
            await control_plane.create_namespace(ns)
            kind = "go" if impl == "go" else "python"
            results[impl], refusals[impl] = await _provision(
                control_plane, api, diff_driver, kind, ns, sc
            )
        assert refusals["ours"] == refusals["go"]
        picky = refusals["ours"]["picky"]
        assert picky == {
            ("Normal", "Provisioning",
             'External provisioner is provisioning volume for claim "NS/picky"'),
            ("Warning", "ProvisioningFailed", "claim Selector is not supported"),
        }  # fmt: skip
        for case, go_pv in results["go"].items():
            ours = normalise(copy.deepcopy(results["ours"][case]), namespaces["ours"])
            theirs = normalise(copy.deepcopy(go_pv), namespaces["go"])
            assert not differences(ours, theirs), f"case {case}: {differences(ours, theirs)}"
        # Not vacuous: the cases differ from each other where they should.
        assert results["ours"]["block"]["spec"]["volumeMode"] == "Block"
        assert "nodeStageSecretRef" in results["ours"]["secret"]["spec"]["csi"]
        restored = results["ours"]["restore"]["spec"]["csi"]["volumeHandle"]
        assert diff_driver.volumes()[restored].source_snapshot_id
    finally:
        # Our provisioner deletes the volumes of both runs.
        proc = await control_plane.start_sidecar(
            "provisioner", *FLAGS, driver=diff_driver.testbed_driver
        )
        try:
            for ns in namespaces.values():
                await api.delete(f"/api/v1/namespaces/{ns}/pods/consumer")
                await api.delete(claims_path(ns))

            async def only_retained() -> bool:
                pvs = (await api.get(PV))["items"]
                return not [
                    pv
                    for pv in pvs
                    if pv["spec"].get("csi", {}).get("driver") == diff_driver.name
                    and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
                ]

            await poll_until(only_retained, 60, "the Delete PVs to go", interval=0.5)
        finally:
            await proc.stop(timeout=10)
        for pv in (await api.get(PV))["items"]:
            if pv["spec"].get("csi", {}).get("driver") == diff_driver.name:
                await api.delete(f"{PV}/{pv['metadata']['name']}")
        for ns in namespaces.values():
            await api.delete(f"/api/v1/namespaces/{ns}")
        await delete_contents(api, {diff_driver.name})
