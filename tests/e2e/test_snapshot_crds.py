"""The snapshot CRDs on the real API server: installed at start, and upstream's CEL cases hold.

external-snapshotter checks its CRD validation rules with golden files in the client module,
``hack/cel-tests/<kind>/`` (run by ``hack/run-cel-tests.sh`` with kubectl). We run the very same
files, read from the Go module cache at test time, against the testbed's kube-apiserver, which
has our CRDs installed, and apply the runner's rules:

* every ``*.yaml`` (including the ``.pre``/``.post`` halves of transitions) is created with a
  server-side dry run; it must be refused with a message containing ``<file>.err`` when that file
  exists, and accepted otherwise;
* every ``X.pre.yaml`` is created, then replaced by ``X.post.yaml``; the update must be refused
  with a message containing ``X.post.yaml.tx_err`` when that exists, and accepted otherwise.

The golden messages were recorded with an older API server, which showed the offending value by
its type (``Invalid value: "string": <message>``); Kubernetes 1.36 shows the value itself, or
nothing for an object. That rendering is the API server's, not the CRD's, so it is the only part
matched loosely; the field path and the rule's message must appear exactly.

upstream applies the second half with ``kubectl apply``; we send a PUT of the post object at the
current resourceVersion, which yields the same new object (post's fields replace pre's). The group
cases are written for v1beta2; they run again against v1, the version the controllers use, since
both must validate alike. A few rules have no upstream case (status rules, which need the status
subresource, and two immutability rules); our own cases for them follow the same pattern.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi_sidecars import crds
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from tests.support.upstream import (
    SNAPSHOTTER_CLIENT,
    SNAPSHOTTER_VERSION,
    module_dir,
    require_module,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

#: kind -> (plural, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "VolumeSnapshot": ("volumesnapshots", True),
    "VolumeSnapshotContent": ("volumesnapshotcontents", False),
    "VolumeSnapshotClass": ("volumesnapshotclasses", False),
    "VolumeGroupSnapshot": ("volumegroupsnapshots", True),
    "VolumeGroupSnapshotContent": ("volumegroupsnapshotcontents", False),
    "VolumeGroupSnapshotClass": ("volumegroupsnapshotclasses", False),
}


# -- the golden cases ----------------------------------------------------------------------------


def _cel_dir() -> Path | None:
    found = module_dir(SNAPSHOTTER_CLIENT, SNAPSHOTTER_VERSION)
    return None if found is None else found / "hack" / "cel-tests"


def _versions(relative: str) -> list[str | None]:
    """None: as written; group cases also as v1."""
    return [None, "v1"] if relative.startswith("volumegroupsnapshot") else [None]


def _create_params() -> list[Any]:
    base = _cel_dir()
    if base is None:
        return [pytest.param(None, None, id="module-missing")]
    return [
        pytest.param(rel, version, id=f"{rel}@{version or 'as-written'}")
        for path in sorted(base.rglob("*.yaml"))
        for rel in [str(path.relative_to(base))]
        for version in _versions(rel)
    ]


def _transition_params() -> list[Any]:
    base = _cel_dir()
    if base is None:
        return [pytest.param(None, None, id="module-missing")]
    return [
        pytest.param(rel, version, id=f"{rel}@{version or 'as-written'}")
        for path in sorted(base.rglob("*.pre.yaml"))
        for rel in [str(path.relative_to(base))]
        for version in _versions(rel)
    ]


def _load(path: Path, version: str | None, namespace: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path}: expected one object"
    obj: dict[str, Any] = docs[0]
    if version is not None:
        obj["apiVersion"] = f"{obj['apiVersion'].split('/')[0]}/{version}"
    if KINDS[obj["kind"]][1]:
        obj["metadata"]["namespace"] = namespace
    return obj


def _collection(obj: dict[str, Any]) -> str:
    plural, namespaced = KINDS[obj["kind"]]
    ns = f"/namespaces/{obj['metadata']['namespace']}" if namespaced else ""
    return f"/apis/{obj['apiVersion']}{ns}/{plural}"


def _item(obj: dict[str, Any]) -> str:
    return f"{_collection(obj)}/{obj['metadata']['name']}"


def _expected(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


#: How the golden files show the offending value: its type, as older API servers printed it.
_GOLDEN_VALUE = re.compile(r'Invalid value: "(?:string|object|array|integer|boolean)": ')
#: How any API server shows it: the value itself (quoted scalar), or nothing for an object.
_ANY_VALUE = r'Invalid value: (?:"(?:[^"\\]|\\.)*": )?'


def expected_pattern(golden: str) -> re.Pattern[str]:
    """The golden error text as a pattern: literal, except the API server's rendering of the
    offending value, which changed across Kubernetes releases (the rule's message did not)."""
    parts = _GOLDEN_VALUE.split(golden)
    return re.compile(_ANY_VALUE.join(re.escape(part) for part in parts))


def _check(what: str, status: int, body: Any, expected: str | None) -> None:
    message = body.get("message", "") if isinstance(body, dict) else str(body)
    if expected is None:
        assert status < 300, f"{what}: refused (HTTP {status}): {message}"
        return
    assert status == 422, f"{what}: HTTP {status}, expected 422 with {expected!r}: {message}"
    assert expected_pattern(expected).search(message), (
        f"{what}: refused with another message: {message}"
    )


@pytest.mark.parametrize(("relative", "version"), _create_params())
async def test_upstream_create_case(
    api: RawApi, namespace: str, relative: str | None, version: str | None
) -> None:
    base = require_module() / "hack" / "cel-tests"
    assert relative is not None
    path = base / relative
    obj = _load(path, version, namespace)
    status, body = await api.call("POST", _collection(obj), obj, params={"dryRun": "All"})
    _check(f"create {relative}", status, body, _expected(path.with_name(path.name + ".err")))


@pytest.mark.parametrize(("relative", "version"), _transition_params())
async def test_upstream_transition_case(
    api: RawApi, namespace: str, relative: str | None, version: str | None
) -> None:
    base = require_module() / "hack" / "cel-tests"
    assert relative is not None
    pre_path = base / relative
    post_path = pre_path.with_name(pre_path.name.replace(".pre.yaml", ".post.yaml"))
    pre = _load(pre_path, version, namespace)
    post = _load(post_path, version, namespace)
    await api.delete(_item(pre))
    await api.wait_deleted(_item(pre), timeout=30)
    created = await api.create(_collection(pre), pre)
    try:
        post["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        status, body = await api.call("PUT", _item(post), post)
        expected = _expected(post_path.with_name(post_path.name + ".tx_err"))
        _check(f"{relative} -> {post_path.name}", status, body, expected)
    finally:
        await api.delete(_item(pre))


# -- our own cases for the rules upstream has none for ------------------------------------------


@dataclass(frozen=True)
class Transition:
    """An object, a change to it (merge patch, maybe on /status) and the message it must get."""

    name: str
    obj: dict[str, Any]
    change: dict[str, Any]
    message: str
    subresource: str = ""
    first: dict[str, Any] | None = None  # an allowed change made before ``change``


def _vsc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": f"vsc-{uuid.uuid4().hex[:8]}"},
        "spec": {
            "deletionPolicy": "Retain",
            "driver": "hostpath.csi.k8s.io",
            "source": {"volumeHandle": "vol-1"},
            "volumeSnapshotRef": {"name": "vs", "namespace": "ns"},
            **spec,
        },
    }


def _vgs(version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"groupsnapshot.storage.k8s.io/{version}",
        "kind": "VolumeGroupSnapshot",
        "metadata": {"name": f"vgs-{uuid.uuid4().hex[:8]}"},
        "spec": {"source": {"selector": {"matchLabels": {"app": "db"}}}},
    }


def _vgsc(version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"groupsnapshot.storage.k8s.io/{version}",
        "kind": "VolumeGroupSnapshotContent",
        "metadata": {"name": f"vgsc-{uuid.uuid4().hex[:8]}"},
        "spec": {
            "deletionPolicy": "Delete",
            "driver": "hostpath.csi.k8s.io",
            "source": {"volumeHandles": ["vol-1", "vol-2"]},
            "volumeGroupSnapshotRef": {"name": "vgs", "namespace": "ns"},
        },
    }


def _vgs_class(version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"groupsnapshot.storage.k8s.io/{version}",
        "kind": "VolumeGroupSnapshotClass",
        "metadata": {"name": f"vgsclass-{uuid.uuid4().hex[:8]}"},
        "driver": "hostpath.csi.k8s.io",
        "deletionPolicy": "Delete",
    }


def _own_cases() -> list[Any]:
    cases = [
        Transition(
            "vsc-sourcevolumemode-immutable",
            _vsc(sourceVolumeMode="Block"),
            {"spec": {"sourceVolumeMode": "Filesystem"}},
            "sourceVolumeMode is immutable",
        )
    ]
    for v in ("v1", "v1beta2"):
        cases += [
            Transition(
                f"vgs-status-bound-immutable-{v}",
                _vgs(v),
                {"status": {"boundVolumeGroupSnapshotContentName": "other"}},
                "boundVolumeGroupSnapshotContentName is immutable once set",
                subresource="/status",
                first={"status": {"boundVolumeGroupSnapshotContentName": "content-1"}},
            ),
            Transition(
                f"vgsc-status-handle-immutable-{v}",
                _vgsc(v),
                {"status": {"volumeGroupSnapshotHandle": "other"}},
                "volumeGroupSnapshotHandle is immutable once set",
                subresource="/status",
                first={"status": {"volumeGroupSnapshotHandle": "group-1", "readyToUse": False}},
            ),
            Transition(
                f"vgsclass-driver-immutable-{v}",
                _vgs_class(v),
                {"driver": "other.csi.k8s.io"},
                "driver is immutable once set",
            ),
        ]
    return [pytest.param(c, id=c.name) for c in cases]


@pytest.mark.parametrize("case", _own_cases())
async def test_rule_without_upstream_case(api: RawApi, namespace: str, case: Transition) -> None:
    obj = json.loads(json.dumps(case.obj))
    if KINDS[obj["kind"]][1]:
        obj["metadata"]["namespace"] = namespace
    await api.create(_collection(obj), obj)
    path = _item(obj) + case.subresource
    try:
        if case.first is not None:
            allowed = await api.patch(path, case.first)
            for section, fields in case.first.items():
                assert fields.items() <= allowed[section].items(), allowed[section]
        status, body = await api.call(
            "PATCH", path, case.change, content_type="application/merge-patch+json"
        )
        _check(case.name, status, body, case.message)
    finally:
        await api.delete(_item(obj))


# -- the installation itself --------------------------------------------------------------------


async def test_crds_installed_and_established(control_plane: ControlPlane, api: RawApi) -> None:
    for name in crds.SNAPSHOT_CRD_NAMES:
        live = await api.get(f"{crds.CRD_PATH}/{name}")
        assert crds.is_established(live), live.get("status")
        shipped = crds.load(name)
        assert crds.served_versions(live) == crds.served_versions(shipped)
        group = shipped["spec"]["group"]
        plural = shipped["spec"]["names"]["plural"]
        for version in shipped["spec"]["versions"]:
            status, _ = await api.call("GET", f"/apis/{group}/{version['name']}/{plural}")
            assert (status == 200) == version["served"], (name, version["name"], status)
    assert control_plane.crds_seconds > 0


async def test_kubectl_short_names_and_printer_columns(
    control_plane: ControlPlane, api: RawApi, namespace: str
) -> None:
    vs = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "snap", "namespace": namespace},
        "spec": {"source": {"persistentVolumeClaimName": "data"}},
    }
    await api.create(f"/apis/snapshot.storage.k8s.io/v1/namespaces/{namespace}/volumesnapshots", vs)
    out = await control_plane.kubectl("get", "vs", "-n", namespace)
    header, row = out.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "READYTOUSE",
        "SOURCEPVC",
        "SOURCESNAPSHOTCONTENT",
        "RESTORESIZE",
        "SNAPSHOTCLASS",
        "SNAPSHOTCONTENT",
        "CREATIONTIME",
        "AGE",
    ]
    assert row.split()[:2] == ["snap", "data"]  # empty columns print nothing
    for short in ("vsc", "vsclass", "vgs", "vgsc", "vgsclass"):
        listed = await control_plane.kubectl("get", short, "-A", "-o", "json")
        assert json.loads(listed)["kind"] == "List"
