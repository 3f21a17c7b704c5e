"""Shared pieces of the chart e2e tests: helm against the testbed, inventories, chart roles.

:class:`HelmCli` runs the testbed's helm with the admin kubeconfig (helm's own directories in a
temporary directory). :func:`inventory` lists what a release could leave behind, so a test can
compare the cluster before an install and after the uninstall. :func:`chart_containers` and
:func:`role_command` turn the csi-sidecars containers of an installed Deployment or DaemonSet
into the command line and environment a container runtime would give them, with only what a
local process must change: the driver socket, the HTTP port (127.0.0.1 and free; in the pod it
is the pod's own network namespace) and, for node-driver-registrar, kubelet's directories.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_sidecars.playground import binaries
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "csi-sidecars"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CSIDRIVERS = "/apis/storage.k8s.io/v1/csidrivers"

#: Collections a release may create objects in: (path template, namespaced).
COLLECTIONS: tuple[tuple[str, bool], ...] = (
    (f"{RBAC}/clusterroles", False),
    (f"{RBAC}/clusterrolebindings", False),
    (CSIDRIVERS, False),
    ("/apis/storage.k8s.io/v1/storageclasses", False),
    (CRDS, False),
    ("/api/v1/persistentvolumes", False),
    ("/api/v1/namespaces/{ns}/serviceaccounts", True),
    ("/api/v1/namespaces/{ns}/secrets", True),
    ("/api/v1/namespaces/{ns}/configmaps", True),
    ("/api/v1/namespaces/{ns}/services", True),
    ("/api/v1/namespaces/{ns}/persistentvolumeclaims", True),
    (f"{RBAC}/namespaces/{{ns}}/roles", True),
    (f"{RBAC}/namespaces/{{ns}}/rolebindings", True),
    ("/apis/apps/v1/namespaces/{ns}/deployments", True),
    ("/apis/apps/v1/namespaces/{ns}/daemonsets", True),
    ("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", True),
)


def driver_values(name: str, **extra: Any) -> dict[str, Any]:
    """Chart values for driver ``name`` (the image is never pulled: the testbed has no kubelet)."""
    values: dict[str, Any] = {
        "driver": {
            "name": name,
            "image": {"registry": "registry.example.com", "repository": "e2e/driver", "tag": "v1"},
            "args": ["--endpoint=$(CSI_ENDPOINT)", "--nodeid=$(KUBE_NODE_NAME)"],
        }
    }
    values.update(extra)
    return values


def unique(prefix: str) -> str:
    """A short unique name."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class HelmError(RuntimeError):
    """helm exited non-zero; ``stderr`` holds its message."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.stderr = stderr
        super().__init__(f"helm {' '.join(args)} exited {returncode}: {stderr.strip()}")


@dataclass
class HelmCli:
    """helm with the testbed's admin kubeconfig."""

    cp: ControlPlane
    home: Path
    chart: Path = CHART
    _count: int = field(default=0, init=False)

    async def run(self, *args: str, timeout: float = 120.0) -> str:
        """Run helm; return stdout.

        Raises:
            HelmError: it exited non-zero.
        """
        env = {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            # client-go's discovery cache goes to $HOME/.kube (the working directory without it)
            "HOME": str(self.home),
            "PATH": "/usr/bin:/bin",
        }
        proc = await asyncio.create_subprocess_exec(
            str(binaries.binary("helm", self.cp.bin_dir)),
            f"--kubeconfig={self.cp.kubeconfig()}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode:
            raise HelmError(args, proc.returncode, err.decode(errors="replace"))
        return out.decode(errors="replace")

    def values_file(self, values: Mapping[str, Any]) -> Path:
        """``values`` written to a new file."""
        self._count += 1
        path = self.home / f"values-{self._count}.json"
        path.write_text(json.dumps(values))
        return path

    async def install(
        self, release: str, namespace: str, values: Mapping[str, Any], chart: Path | None = None
    ) -> str:
        """``helm install``; returns its output (with NOTES)."""
        return await self.run(
            "install",
            release,
            str(chart or self.chart),
            "-n",
            namespace,
            "-f",
            str(self.values_file(values)),
        )

    async def upgrade(
        self, release: str, namespace: str, values: Mapping[str, Any], chart: Path | None = None
    ) -> str:
        """``helm upgrade`` with exactly ``values`` (not merged with the previous ones)."""
        return await self.run(
            "upgrade",
            release,
            str(chart or self.chart),
            "-n",
            namespace,
            "-f",
            str(self.values_file(values)),
        )

    async def uninstall(self, release: str, namespace: str) -> str:
        """``helm uninstall`` (waits until the objects are deleted)."""
        return await self.run("uninstall", release, "-n", namespace, "--wait")

    async def revision(self, release: str, namespace: str) -> int:
        """The release's current revision."""
        listed = json.loads(await self.run("list", "-n", namespace, "-o", "json", "-a"))
        (entry,) = [r for r in listed if r["name"] == release]
        return int(entry["revision"])


def copy_chart(target: Path) -> Path:
    """A copy of the chart to modify (e.g. a newer CRD bundle)."""
    dest = target / "csi-sidecars"
    shutil.copytree(CHART, dest)
    return dest


async def inventory(api: RawApi, namespaces: Sequence[str]) -> set[str]:
    """``path/name`` of every object in :data:`COLLECTIONS` (namespaced ones in ``namespaces``)."""
    found: set[str] = set()
    paths = [p for p, namespaced in COLLECTIONS if not namespaced]
    paths += [p.format(ns=ns) for p, namespaced in COLLECTIONS if namespaced for ns in namespaces]
    for path in paths:
        listed = await api.get(path)
        found |= {f"{path}/{item['metadata']['name']}" for item in listed["items"]}
    return found


# ---- the chart's roles as local processes -------------------------------------------------


@dataclass(frozen=True)
class ChartContainer:
    """One csi-sidecars container of an installed workload."""

    workload: str
    service_account: str
    automount: bool
    role: str
    name: str
    args: tuple[str, ...]
    env: tuple[dict[str, Any], ...]
    #: The path of its liveness probe on its own HTTP port ("" without one).
    liveness_path: str = ""


def chart_containers(workload: Mapping[str, Any]) -> list[ChartContainer]:
    """The csi-sidecars containers of a Deployment or DaemonSet read from the API server."""
    pod = workload["spec"]["template"]["spec"]
    out = []
    for container in pod["containers"]:
        command = container.get("command") or []
        if command[:1] != ["csi-sidecars"]:
            continue
        out.append(
            ChartContainer(
                workload=workload["metadata"]["name"],
                service_account=pod.get("serviceAccountName", "default"),
                automount=pod.get("automountServiceAccountToken", True),
                role=command[1],
                name=container["name"],
                args=tuple(container.get("args") or ()),
                env=tuple(container.get("env") or ()),
                liveness_path=container.get("livenessProbe", {}).get("httpGet", {}).get("path", ""),
            )
        )
    return out


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of args (unknown references stay as they are)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(
    container: ChartContainer, *, namespace: str, pod: str, node: str
) -> dict[str, str]:
    """The container's environment as kubelet resolves it (fieldRefs of the downward API)."""
    fields = {"metadata.namespace": namespace, "metadata.name": pod, "spec.nodeName": node}
    env: dict[str, str] = {}
    for entry in container.env:
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
        elif "fieldRef" in entry.get("valueFrom", {}):
            env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            raise ValueError(f"{container.name}: unsupported env entry {entry}")
    return env


@dataclass(frozen=True)
class RoleCommand:
    """A chart container as a local process: argv, environment, and its HTTP port."""

    argv: list[str]
    env: dict[str, str]
    http_port: int
    rewritten: dict[str, str]


def role_command(
    container: ChartContainer,
    env: Mapping[str, str],
    *,
    socket: Path,
    registry_dir: Path | None = None,
) -> RoleCommand:
    """``python -m csi_sidecars <role> <args>`` with the local rewrites (and nothing else).

    Args:
        container: the container read from the cluster.
        env: its resolved environment (plus KUBECONFIG for a role with an identity).
        socket: the local driver socket (``--csi-address``, and the path kubelet would dial).
        registry_dir: kubelet's plugin registry stand-in (node-driver-registrar).
    """
    port = free_port()
    rewrites = {
        "--csi-address": str(socket),
        "--http-endpoint": f"127.0.0.1:{port}",
        "--kubelet-registration-path": str(socket),
    }
    if registry_dir is not None:
        rewrites["--plugin-registration-path"] = str(registry_dir)
    args: list[str] = []
    done: dict[str, str] = {}
    for raw in container.args:
        arg = expand(raw, env)
        flag, eq, value = arg.partition("=")
        if eq and flag in rewrites:
            done[flag] = value
            arg = f"{flag}={rewrites[flag]}"
        args.append(arg)
    argv = [sys.executable, "-m", "csi_sidecars", container.role, *args]
    return RoleCommand(argv, dict(env), port, done)


async def service_account_token(
    api: RawApi, namespace: str, account: str, seconds: int = 3600
) -> str:
    """A token for ``account`` from the TokenRequest API (as kubelet mounts one)."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    made = await api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body)
    return str(made["status"]["token"])


def token_kubeconfig(cp: ControlPlane, token: str, path: Path) -> Path:
    """A kubeconfig for ``token`` against the testbed's API server."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "testbed",
                        "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)},
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "testbed", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path
