"""Real nodes of the testbed: a containerd and a kubelet per Node, all under the work directory.

:class:`RealNode` runs one Node: it writes the node's containerd and kubelet configuration,
imports the local images, creates the node's cgroup root, starts both and waits until kubelet
has registered a Ready Node. Stopping it stops kubelet, then every pod sandbox through CRI,
then containerd and its shims, unmounts everything below the node directory, and removes the
cgroup and the CNI bridge. A crashed run leaves a ``node.json`` record that :func:`sweep` reads
to remove the same things before the next testbed deletes the directory.

:class:`RealNodes` is the part of :class:`~csi_sidecars.playground.controlplane.ControlPlane`
that knows about real nodes: which API server and controller-manager settings they need, and
helpers to place a CSI driver and its node-driver-registrar the way a node DaemonSet would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.playground import binaries, hostops, images
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.containerd import (
    CNI_BIN_DIR,
    Containerd,
    ContainerdPaths,
    pick_subnet,
    used_networks,
)
from csi_sidecars.playground.images import BuiltImage
from csi_sidecars.playground.kubelet import Kubelet, KubeletPaths, kubelet_config
from csi_sidecars.playground.process import free_port
from csi_sidecars.runtime.logging import get_logger

log = get_logger("testbed")

NODES_DIR = "nodes"
RECORD_FILE = "node.json"
#: Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107
#: The registration socket name node-driver-registrar creates for a driver.
REG_SOCKET = "{driver}-reg.sock"

#: kube-controller-manager controllers a cluster with running pods needs on top of the
#: storage ones: service-account tokens and CA bundles for in-cluster clients, and the
#: workload controllers that run sidecars as a Deployment and a DaemonSet.
REAL_NODE_CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "daemonset-controller",
    "pod-garbage-collector-controller",
)


@dataclass(frozen=True)
class Requirement:
    """Something a real node needs and how to get it."""

    what: str
    present: bool
    how: str


def requirements(bin_dir: Path) -> list[Requirement]:
    """What real nodes need on this machine, and whether each piece is there."""
    which = shutil.which
    return [
        Requirement("containerd", which("containerd") is not None, "apt-get install containerd"),
        Requirement("ctr", which("ctr") is not None, "apt-get install containerd"),
        Requirement("runc", which("runc") is not None, "apt-get install runc"),
        Requirement(
            "CNI plugins",
            (CNI_BIN_DIR / "bridge").exists() and (CNI_BIN_DIR / "host-local").exists(),
            "apt-get install containernetworking-plugins",
        ),
        Requirement("busybox", images.BUSYBOX_BINARY.exists(), "apt-get install busybox-static"),
        Requirement(
            "kubelet", not binaries.missing(["kubelet"], bin_dir), "testbed/build.sh kubelet"
        ),
        Requirement("pause", not binaries.missing(["pause"], bin_dir), "testbed/build.sh pause"),
        Requirement("ip", which("ip") is not None, "apt-get install iproute2"),
        Requirement("unshare", which("unshare") is not None, "apt-get install util-linux"),
    ]


def missing_requirements(bin_dir: Path) -> list[Requirement]:
    """The requirements of :func:`requirements` that are not met."""
    return [r for r in requirements(bin_dir) if not r.present]


def explain_missing(missing: list[Requirement]) -> str:
    """One message saying what to install for real nodes."""
    parts = [f"{r.what} ({r.how})" for r in missing]
    return "real nodes need: " + "; ".join(parts)


@dataclass(frozen=True)
class NodeRecord:
    """What a node leaves outside its directory, written before it is created."""

    node: str
    bridge: str
    network: str
    cgroup_root: str
    subnet: str

    @classmethod
    def load(cls, path: Path) -> NodeRecord | None:
        """Read a record; None when it is missing or unreadable."""
        try:
            data = json.loads(path.read_text())
            return cls(**{f.name: str(data[f.name]) for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError, TypeError):
            return None


def containerd_paths(node_dir: Path) -> ContainerdPaths:
    """Where a node's containerd keeps everything, below the node directory."""
    return ContainerdPaths(node_dir / "containerd")


def sockets_fit(work_dir: Path, nodes: list[str], driver: str) -> bool:
    """Whether every node's kubelet sockets below ``work_dir`` fit in a unix socket address."""
    registries = [KubeletPaths(work_dir / NODES_DIR / n).plugins_registry for n in nodes]
    return all(
        len(str(r / REG_SOCKET.format(driver=driver))) <= MAX_SOCKET_PATH for r in registries
    )


def testbed_tag(work_dir: Path) -> str:
    """A short tag naming a testbed's host-level objects (bridges, cgroups, networks)."""
    return hashlib.sha256(str(work_dir.resolve()).encode()).hexdigest()[:6]


def release_host_objects(record: NodeRecord) -> None:
    """Remove a node's cgroup and bridge (missing ones are fine)."""
    hostops.remove_cgroup(record.cgroup_root)
    hostops.delete_link(record.bridge)


def sweep(work_dir: Path) -> int:
    """Undo what crashed real nodes of ``work_dir`` left; returns how many nodes were swept.

    Kills processes that name the directory (containerd shims outlive their parent, and keep
    containerd's mount namespace with its shim sockets and CNI cache), removes every mount below
    it and the loop devices of its block volumes, then each recorded cgroup and bridge.
    """
    records = [
        r
        for r in (NodeRecord.load(p) for p in (work_dir / NODES_DIR).glob(f"*/{RECORD_FILE}"))
        if r is not None
    ]
    if not records and not (work_dir / NODES_DIR).exists():
        return 0
    hostops.kill_all(hostops.processes_using(work_dir))
    for record in records:
        # Containers are in the node's cgroup, not children of anything we can name.
        hostops.remove_cgroup(record.cgroup_root)
    hostops.unmount_all(work_dir)
    hostops.release_loop_devices(work_dir)
    for record in records:
        release_host_objects(record)
    return len(records)


class RealNode:
    """One Node run by a real kubelet and containerd.

    Args:
        name: the Node name.
        base: the node directory (``<work>/nodes/<name>``).
        record: the host-level names of the node.
        bin_dir: where kubelet is.
        kubeconfig: the kubelet's kubeconfig (identity ``system:node:<name>``).
        client_ca: the CA kubelet trusts for client certificates (the API server's).
        built: image tars to import into containerd before kubelet starts (with the pause
            image, which is never pulled).
        log_dir: where containerd's and kubelet's logs go.
    """

    def __init__(
        self,
        name: str,
        base: Path,
        record: NodeRecord,
        *,
        bin_dir: Path,
        kubeconfig: Path,
        client_ca: Path,
        built: list[BuiltImage],
        log_dir: Path,
        verbosity: int = 1,
    ) -> None:
        self.name = name
        self.base = base
        self.record = record
        if not any(image.name == images.PAUSE_IMAGE for image in built):
            raise ValueError(f"the sandbox image {images.PAUSE_IMAGE} must be among the images")
        self.images = built
        self.containerd = Containerd(
            containerd_paths(base),
            sandbox_image=images.PAUSE_IMAGE,
            network=record.network,
            bridge=record.bridge,
            subnet=record.subnet,
            log_path=log_dir / f"containerd-{name}.log",
        )
        self.paths = KubeletPaths(base)
        self.kubelet = Kubelet(
            name,
            self.paths,
            binary=binaries.binary("kubelet", bin_dir),
            kubeconfig=kubeconfig,
            config=kubelet_config(
                self.paths,
                runtime_socket=self.containerd.paths.socket,
                client_ca=client_ca,
                cgroup_root=f"/{record.cgroup_root}",
                port=free_port(),
                healthz_port=free_port(),
            ),
            log_path=log_dir / f"kubelet-{name}.log",
            verbosity=verbosity,
        )

    def registration_socket(self, driver: str) -> Path:
        """Where node-driver-registrar's socket for ``driver`` appears."""
        return self.paths.plugins_registry / REG_SOCKET.format(driver=driver)

    def driver_socket(self, driver: str) -> Path:
        """The conventional CSI socket of ``driver`` on this node (``plugins/<driver>/``)."""
        return self.paths.plugins / driver / "csi.sock"

    def check_socket_paths(self, driver: str) -> None:
        """Fail early when the node's sockets would not fit in a unix socket address.

        Raises:
            ValueError: the work directory is too deep.
        """
        for sock in (
            self.registration_socket(driver),
            self.driver_socket(driver),
            self.containerd.paths.socket,
        ):
            if len(str(sock)) > MAX_SOCKET_PATH:
                raise ValueError(
                    f"{sock} is longer than {MAX_SOCKET_PATH} bytes, too long for a unix socket: "
                    "use a shorter work directory"
                )

    async def start(self, api: RawApi, timeout: float = 120.0) -> None:
        """Start containerd, import the images, start kubelet, wait for the Node to be Ready."""
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / RECORD_FILE).write_text(json.dumps(dataclasses.asdict(self.record)) + "\n")
        hostops.create_cgroup(self.record.cgroup_root)
        await self.containerd.start()
        for image in self.images:
            await self.containerd.import_image(image.tar)
        await self.kubelet.start()
        await self.kubelet.wait_ready(api, timeout)

    async def import_image(self, tar: Path) -> None:
        """Import an image tar into the node's containerd, unless its image is there already
        (the name is in the ``.name`` file next to the tar)."""
        name_file = tar.with_suffix(".name")
        if name_file.exists() and name_file.read_text().strip() in await self.containerd.images():
            return
        await self.containerd.import_image(tar)

    async def stop(self) -> None:
        """Stop kubelet, every pod, containerd; unmount and release everything of the node."""
        await self.kubelet.stop()
        await self.containerd.stop()
        hostops.remove_cgroup(self.record.cgroup_root)
        hostops.unmount_all(self.base)
        release_host_objects(self.record)


def plan_nodes(work_dir: Path, names: list[str]) -> list[NodeRecord]:
    """The host-level names of each node of a testbed: bridge, network, cgroup, subnet."""
    tag = testbed_tag(work_dir)
    try:
        taken = used_networks(Path("/proc/net/route").read_text())
    except OSError:
        taken = []
    records = []
    for index, name in enumerate(names, start=1):
        subnet = pick_subnet(taken)
        taken.append(subnet)
        records.append(
            NodeRecord(
                node=name,
                bridge=f"csitb{tag}{index}",
                network=f"csi-tb-{tag}-{name}",
                cgroup_root=f"csi-testbed-{tag}-{name}",
                subnet=str(subnet),
            )
        )
    return records


def adjust_apiserver_args(args: list[str], kubelet_cert: Path, kubelet_key: Path) -> list[str]:
    """The API server's flags for a cluster with real kubelets.

    Node authorization (kubelets read only what their pods need), the ServiceAccount admission
    plugin back on (pods get tokens), privileged containers allowed (a CSI node plugin is one),
    and the client certificate with which the API server reaches kubelets for logs and exec, by
    their InternalIP (all nodes are 127.0.0.1 with their own kubelet ports).
    """
    out = []
    for arg in args:
        if arg.startswith("--authorization-mode="):
            out.append("--authorization-mode=Node,RBAC")
        elif arg == "--disable-admission-plugins=ServiceAccount":
            continue
        else:
            out.append(arg)
    if "--allow-privileged=true" not in out:
        out.append("--allow-privileged=true")
    return [
        *out,
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={kubelet_cert}",
        f"--kubelet-client-key={kubelet_key}",
    ]


async def start_all(nodes: list[RealNode], api: RawApi) -> None:
    """Start several nodes at once. When one fails the caller stops them all: a node can be
    stopped whatever state its start reached."""
    await asyncio.gather(*(node.start(api) for node in nodes))


async def stop_all(nodes: list[RealNode]) -> None:
    """Stop nodes one after the other, logging and going on when one fails."""
    for node in nodes:
        try:
            await node.stop()
        except Exception as err:
            log.warning("Stopping a real node failed", node=node.name, error=repr(err))


def node_identity(name: str) -> tuple[str, str, tuple[str, ...]]:
    """``(identity name, user, groups)`` of a node's kubelet."""
    return (f"kubelet-{name}", f"system:node:{name}", ("system:nodes",))


def describe(node: RealNode) -> dict[str, Any]:
    """What playground.json says about a real node."""
    return {
        "name": node.name,
        "kubelet": True,
        "kubeletRootDir": str(node.paths.root),
        "pluginsRegistry": str(node.paths.plugins_registry),
        "containerdSocket": str(node.containerd.paths.socket),
        "kubeletPort": node.kubelet.port,
        "podSubnet": node.record.subnet,
    }
