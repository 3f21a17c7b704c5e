"""One containerd per real node, with everything it writes under the node's directory.

containerd normally owns ``/var/lib/containerd``, ``/run/containerd`` and reads CNI networks from
``/etc/cni/net.d``. Here each node gets its own root, state, socket, CNI configuration and IPAM
directory, a bridge of its own name and subnet, and pods' network namespaces under the state
directory, so that several testbeds can run side by side and none touches the host's. The CRI
settings are those that work on the project's machines (see ``reference/real-node.md``):
``restrict_oom_score_adj`` (root there lacks CAP_SYS_RESOURCE), runc with cgroupfs, overlayfs,
and the locally built pause image as the sandbox image.

What containerd 1.6 hard-codes, its shims' sockets in ``/run/containerd/s`` and libcni's cache
in ``/var/lib/cni``, it writes below the node directory too: it runs in a mount namespace of its
own with node directories mounted over those paths (:mod:`~csi_sidecars.playground.mountns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.playground import cri, hostops, mountns
from csi_sidecars.playground.process import ManagedProcess, poll_until
from csi_sidecars.runtime.logging import get_logger

log = get_logger("testbed")

#: Where Debian's containernetworking-plugins installs the CNI plugins.
CNI_BIN_DIR = Path("/usr/lib/cni")
#: The CRI namespace kubelet's containers live in.
K8S_NAMESPACE = "k8s.io"
#: libcni's result cache as containerd sees it (hard-coded in containerd 1.6's CNI library).
CNI_CACHE = mountns.CNI_CACHE_DIR / "results"
#: Plugins that would probe or write host paths and that the testbed never uses.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


@dataclass(frozen=True)
class ContainerdPaths:
    """The files and directories of one node's containerd, all under ``base``."""

    base: Path

    @property
    def root(self) -> Path:
        """Persistent data: content store, snapshots, metadata."""
        return self.base / "root"

    @property
    def state(self) -> Path:
        """Runtime state: tasks, runc state, network namespaces."""
        return self.base / "state"

    @property
    def socket(self) -> Path:
        """The gRPC (and CRI) socket kubelet and ``ctr`` dial."""
        return self.base / "containerd.sock"

    @property
    def config(self) -> Path:
        """The generated config.toml."""
        return self.base / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        """The CNI configuration directory containerd reads (instead of /etc/cni/net.d)."""
        return self.base / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        """host-local IPAM's allocations (instead of /var/lib/cni/networks)."""
        return self.base / "cni" / "ipam"

    @property
    def host_view(self) -> Path:
        """What containerd's mount namespace sees over the host paths it hard-codes
        (``host/run/containerd/s``, ``host/var/lib/cni``, or a directory above them)."""
        return self.base / "host"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _tables(tables: dict[str, dict[str, object]]) -> str:
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name}]" if name else "")
        lines.extend(f"  {key} = {_toml(v)}" for key, v in values.items())
        lines.append("")
    return "\n".join(lines)


def containerd_config(
    paths: ContainerdPaths, sandbox_image: str, cni_bin_dir: Path = CNI_BIN_DIR
) -> str:
    """The config.toml (version 2) of a node's containerd.

    Args:
        paths: where everything goes.
        sandbox_image: the pause image (imported locally; never pulled).
        cni_bin_dir: where the CNI plugins are.
    """
    cri_plugin = 'plugins."io.containerd.grpc.v1.cri"'
    runc = f"{cri_plugin}.containerd.runtimes.runc"
    return _tables(
        {
            "": {
                "version": 2,
                "root": str(paths.root),
                "state": str(paths.state),
                "disabled_plugins": list(DISABLED_PLUGINS),
            },
            "grpc": {"address": str(paths.socket)},
            "ttrpc": {"address": f"{paths.socket}.ttrpc"},
            "debug": {"address": ""},
            "metrics": {"address": ""},
            'plugins."io.containerd.internal.v1.opt"': {"path": str(paths.base / "opt")},
            cri_plugin: {
                "sandbox_image": sandbox_image,
                "restrict_oom_score_adj": True,
                "netns_mounts_under_state_dir": True,
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
                "enable_selinux": False,
                "disable_apparmor": True,
                "max_container_log_line_size": 16384,
            },
            f"{cri_plugin}.containerd": {
                "snapshotter": "overlayfs",
                "default_runtime_name": "runc",
            },
            runc: {"runtime_type": "io.containerd.runc.v2"},
            f"{runc}.options": {
                "SystemdCgroup": False,
                "Root": str(paths.state / "runc"),
            },
            f"{cri_plugin}.cni": {
                "bin_dir": str(cni_bin_dir),
                "conf_dir": str(paths.cni_conf_dir),
                "max_conf_num": 1,
            },
            f"{cri_plugin}.registry": {"config_path": str(paths.base / "certs.d")},
        }
    )


def cni_conflist(network: str, bridge: str, subnet: str, data_dir: Path) -> dict[str, Any]:
    """A bridge network with host-local IPAM in ``data_dir``.

    No gateway on the bridge, no masquerading and no port mapping: those would switch on IP
    forwarding and add iptables rules host-wide, and testbed pods only talk to the node.
    """
    return {
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "dataDir": str(data_dir),
                },
            },
            {"type": "loopback"},
        ],
    }


def used_networks(route_text: str) -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations of ``/proc/net/route`` (hex, little-endian), default excluded."""
    nets = []
    for line in route_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        except ValueError:
            continue
        if int(mask) == 0:
            continue
        nets.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return nets


def pick_subnet(
    taken: list[ipaddress.IPv4Network], rng: random.Random | None = None
) -> ipaddress.IPv4Network:
    """A /24 in 10.192.0.0/11 that overlaps nothing in ``taken``.

    Raises:
        RuntimeError: no free /24 after many tries (a host full of routes).
    """
    rng = rng or random.Random()
    pool = ipaddress.IPv4Network("10.192.0.0/11")
    for _ in range(500):
        index = rng.randrange(pool.num_addresses // 256)
        candidate = ipaddress.IPv4Network((int(pool.network_address) + index * 256, 24))
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise RuntimeError("no free /24 in 10.192.0.0/11 for a testbed pod network")


def runtime_ids(paths: ContainerdPaths) -> set[str]:
    """IDs of every sandbox, container and task the node's containerd has on disk."""
    dirs = (
        paths.root / "io.containerd.grpc.v1.cri" / "sandboxes",
        paths.root / "io.containerd.grpc.v1.cri" / "containers",
        paths.state / "io.containerd.runtime.v2.task" / K8S_NAMESPACE,
    )
    ids: set[str] = set()
    for directory in dirs:
        with contextlib.suppress(OSError):
            ids.update(p.name for p in directory.iterdir())
    return ids


def shim_socket(paths: ContainerdPaths, task_id: str) -> Path:
    """Where the socket of this containerd's shim for ``task_id`` is on the host (containerd
    1.6 names it by the sha256 of the containerd address, namespace and ID, in
    /run/containerd/s of its mount namespace)."""
    digest = hashlib.sha256(f"{paths.socket}/{K8S_NAMESPACE}/{task_id}".encode()).hexdigest()
    return mountns.host_path(paths.host_view, mountns.SHIM_SOCKET_DIR / digest)


def cni_cache(paths: ContainerdPaths) -> Path:
    """Where this containerd's libcni result cache is on the host."""
    return mountns.host_path(paths.host_view, CNI_CACHE)


class Containerd:
    """A node's containerd process and its CNI network."""

    def __init__(
        self,
        paths: ContainerdPaths,
        *,
        sandbox_image: str,
        network: str,
        bridge: str,
        subnet: str,
        log_path: Path,
    ) -> None:
        self.paths = paths
        self.sandbox_image = sandbox_image
        self.network = network
        self.bridge = bridge
        self.subnet = subnet
        #: The node directory: its mounts travel between the host and containerd's namespace.
        self.shared = paths.base.parent
        self.binds = mountns.plan_binds(paths.host_view)
        self.process = ManagedProcess(
            f"containerd-{network}",
            mountns.wrap(["containerd", f"--config={paths.config}"], self.binds),
            log_path,
        )

    def write_config(self) -> None:
        """Write config.toml and the CNI conflist."""
        for directory in (self.paths.root, self.paths.state, self.paths.cni_conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.paths.cni_data_dir.mkdir(parents=True, exist_ok=True)
        self.paths.config.write_text(containerd_config(self.paths, self.sandbox_image))
        conflist = cni_conflist(self.network, self.bridge, self.subnet, self.paths.cni_data_dir)
        (self.paths.cni_conf_dir / "10-testbed.conflist").write_text(
            json.dumps(conflist, indent=2) + "\n"
        )

    async def start(self, timeout: float = 60.0) -> None:
        """Start containerd and wait until its CRI service answers.

        Raises:
            RuntimeError: containerd exited (the message has its log tail).
            TimeoutError: CRI did not answer in time.
        """
        self.write_config()
        mountns.prepare(self.paths.host_view)
        mountns.share(self.shared)
        await self.process.start()

        async def answering() -> bool:
            if not self.process.running:
                raise RuntimeError(
                    f"containerd exited with {self.process.returncode}:\n"
                    + self.process.log_tail(30)
                )
            if not self.paths.socket.exists():
                return False
            async with cri.CriClient(str(self.paths.socket), timeout=2) as client:
                await client.version()
            return True

        await poll_until(answering, timeout, "containerd's CRI service", fatal=(RuntimeError,))

    async def ctr(self, *args: str, timeout: float = 300.0) -> str:
        """Run ``ctr`` against this containerd in the CRI namespace; return its output.

        Raises:
            RuntimeError: ctr exited non-zero.
        """
        proc = await asyncio.create_subprocess_exec(
            "ctr",
            f"--address={self.paths.socket}",
            f"--namespace={K8S_NAMESPACE}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        text = out.decode(errors="replace")
        if proc.returncode:
            raise RuntimeError(f"ctr {' '.join(args)} exited {proc.returncode}: {text.strip()}")
        return text

    async def import_image(self, tar: Path) -> None:
        """Import a docker-archive image tar (unpacked for the overlayfs snapshotter)."""
        await self.ctr("images", "import", str(tar))

    async def images(self) -> list[str]:
        """The image names this containerd holds."""
        out = await self.ctr("images", "list", "--quiet")
        return [line.strip() for line in out.splitlines() if line.strip()]

    async def stop(self) -> None:
        """Stop and remove every pod sandbox, stop containerd, kill leftover shims.

        Sandboxes are stopped through CRI so that CNI tears their networks down; shims (which
        outlive containerd by design) are killed by their command line, which names our socket;
        with the last of them containerd's mount namespace goes.
        """
        if self.process.running and self.paths.socket.exists():
            try:
                async with cri.CriClient(str(self.paths.socket), timeout=30) as client:
                    await client.remove_all()
            except Exception as err:  # clean-up goes on whatever containerd says
                log.warning("Removing pod sandboxes failed", error=str(err))
        await self.process.stop(timeout=10)
        hostops.kill_all(hostops.processes_using(self.paths.base))
        hostops.delete_link(self.bridge)

    def remove_files(self) -> None:
        """Delete the node's containerd directory (after everything was unmounted)."""
        shutil.rmtree(self.paths.base, ignore_errors=True)
