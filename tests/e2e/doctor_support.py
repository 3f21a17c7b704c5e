"""Helpers of doctor's e2e tests: run doctor (in-process or as the CLI), wait for a diagnosis,
drivers that are not registered on nodes, static volumes, a read-only identity from the docs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from csi_sidecars.doctor.command import run
from csi_sidecars.doctor.render import render_finding
from csi_sidecars.doctor.report import Finding, Report
from csi_sidecars.doctor.scan import Target
from csi_sidecars.playground import objects
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import write_faults_file
from csi_sidecars.playground.process import poll_until
from tests.e2e.provisioner_support import CSIDRIVERS, PV, ProvDriver

DOCS = Path(__file__).parents[2] / "docs" / "cli.md"
REPO = Path(__file__).parents[2]


async def doctor(cp: ControlPlane, target: Target, kubeconfig: Path | None = None) -> Report:
    """One in-process doctor run, as the command does it."""
    return await run(target, str(kubeconfig or cp.kubeconfig()))


async def diagnosis(
    cp: ControlPlane, target: Target, code: str, timeout: float = 45.0, **want: str
) -> Finding:
    """Run doctor until the object's finding has ``code`` (and evidence containing each of
    ``want``'s values); fail with the last finding otherwise."""
    last: list[Finding] = []

    async def check() -> Finding | None:
        report = await doctor(cp, target)
        (found,) = report.findings
        last[:] = [found]
        messages = " | ".join(e.message for e in found.evidence)
        if found.code == code and all(text in messages for text in want.values()):
            return found
        return None

    try:
        return await poll_until(check, timeout, f"doctor to diagnose {code}", interval=0.5)
    except TimeoutError:
        shown = "\n".join(render_finding(last[0])) if last else "(no finding)"
        raise AssertionError(f"doctor did not say {code} in {timeout}s; last:\n{shown}") from None


async def cli(*args: str, kubeconfig: Path, timeout: float = 60.0) -> tuple[int, str, str]:
    """``python -m csi_sidecars doctor ARGS`` as a user runs it; (exit status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KUBECONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csi_sidecars",
        "doctor",
        f"--kubeconfig={kubeconfig}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_unregistered_driver(cp: ControlPlane, *args: str) -> ProvDriver:
    """A playground driver with a CSIDriver object but no CSINode entry on any node (its
    node-driver-registrar never ran)."""
    name = f"doc-{uuid.uuid4().hex[:6]}.csi.test"
    node = cp.node_names[0]
    base = Path(tempfile.mkdtemp(prefix="doc-"))
    (base / "state").mkdir()
    write_faults_file(base / "faults.json", [])
    argv = [
        sys.executable,
        "-m",
        "csi_sidecars.playground.driver",
        f"--endpoint=unix://{base / 'csi.sock'}",
        f"--nodeid={node}",
        f"--drivername={name}",
        f"--statedir={base / 'state'}",
        f"--faults-file={base / 'faults.json'}",
        *args,
    ]
    process = await cp.start_process(f"driver-{name}", argv)
    drv = ProvDriver(name, node, base, process)

    async def listening() -> bool:
        assert process.running, process.log_tail()
        return drv.socket.exists()

    await poll_until(listening, 30, "the driver socket", fatal=(AssertionError,))
    await cp.admin.ensure(CSIDRIVERS, objects.csidriver(name, attach_required=True))
    return drv


def static_pv(name: str, driver: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    """A pre-created CSI volume in a class nobody else asks for (so no claim binds it)."""
    meta: dict[str, Any] = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta,
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Mi"},
            "csi": {"driver": driver, "volumeHandle": f"handle-{name}"},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": f"static-{name}",
        },
    }


async def delete_pv_for_good(cp: ControlPlane, name: str) -> None:
    """Remove a PV's finalizers and delete it (test clean-up)."""
    path = f"{PV}/{name}"
    if await cp.admin.get_or_none(path) is not None:
        await cp.admin.patch(path, {"metadata": {"finalizers": None}})
        await cp.admin.delete(path)


def docs_cluster_role() -> dict[str, Any]:
    """The read-only ClusterRole of the doctor section of docs/cli.md."""
    section = DOCS.read_text().split("## csi-sidecars doctor", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        doc = yaml.safe_load(block)
        if doc.get("kind") == "ClusterRole":
            return dict(doc)
    raise AssertionError("no ClusterRole in the doctor section of docs/cli.md")


async def read_only_kubeconfig(cp: ControlPlane, namespace: str, directory: Path) -> Path:
    """A ServiceAccount bound to the docs' ClusterRole, and a kubeconfig with its token."""
    api = cp.admin
    role = docs_cluster_role()
    role["metadata"]["name"] = f"doctor-{namespace}"
    await api.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "doctor"}}
    await api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", sa)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"doctor-{namespace}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"kind": "ServiceAccount", "name": "doctor", "namespace": namespace}],
    }
    await api.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    issued = await api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/doctor/token", request
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "t",
                "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)},
            }
        ],
        "users": [{"name": "doctor", "user": {"token": issued["status"]["token"]}}],
        "contexts": [
            {"name": "t", "context": {"cluster": "t", "user": "doctor", "namespace": namespace}}
        ],
        "current-context": "t",
    }
    path = directory / "doctor.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


async def drop_read_only(cp: ControlPlane, namespace: str) -> None:
    """Delete what :func:`read_only_kubeconfig` created outside the namespace."""
    await cp.admin.delete(
        f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/doctor-{namespace}"
    )
    await cp.admin.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/doctor-{namespace}")
