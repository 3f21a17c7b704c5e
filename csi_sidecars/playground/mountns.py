"""containerd in a mount namespace of its own, so that what it hard-codes lands in the work dir.

containerd 1.6 puts its shims' sockets in ``/run/containerd/s`` and its CNI library caches
results in ``/var/lib/cni``, whatever its configuration says. The testbed starts containerd
through ``unshare --mount`` with a directory of the node bind-mounted over each of them (or
over the nearest directory above that exists, so the host gains no directory either): shims,
runc and the CNI plugins inherit that view, the host never sees their files, and they go with
the node directory.

Mounts must still travel between the host and the namespace: the driver's bind mounts under
kubelet's directory (kubelet and the driver run on the host) must reach the containers, and a
node plugin pod's Bidirectional mounts must reach kubelet. So the node directory is first made
a shared mount on the host (bind-mounted onto itself) and the namespace is created with its
propagation unchanged: its copy of the node directory is a peer, everything else a private
copy. The bind mounts over the hard-coded paths are made private in the namespace at once.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from csi_sidecars.playground import hostops

#: Where containerd 1.6 shims put their sockets, whatever containerd's state directory is.
SHIM_SOCKET_DIR = Path("/run/containerd/s")
#: libcni's cache (results per pod network), hard-coded in containerd 1.6's CNI library.
CNI_CACHE_DIR = Path("/var/lib/cni")
#: The host paths containerd's namespace sees from the node directory instead.
HARD_CODED = (SHIM_SOCKET_DIR, CNI_CACHE_DIR)


@dataclass(frozen=True)
class Bind:
    """A directory of the node (``source``) mounted over a host directory (``target``)."""

    source: Path
    target: Path


def anchor(path: Path) -> Path:
    """``path`` or the nearest directory above it that exists (a mount needs an existing
    mount point, and creating one would change the host)."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def plan_binds(host_view: Path, targets: tuple[Path, ...] | None = None) -> list[Bind]:
    """The bind mounts that give containerd ``host_view/<path>`` for each of ``targets``
    (default :data:`HARD_CODED`), each covered at its :func:`anchor` (nothing is created).

    Raises:
        RuntimeError: nothing of a target's path exists but ``/`` (which is never covered).
    """
    binds: list[Bind] = []
    for target in HARD_CODED if targets is None else targets:
        at = anchor(target)
        if at == Path(at.anchor):
            raise RuntimeError(f"no directory of {target} exists to mount over")
        if all(b.target != at for b in binds):
            binds.append(Bind(host_view / at.relative_to("/"), at))
    return binds


def prepare(host_view: Path, targets: tuple[Path, ...] | None = None) -> list[Bind]:
    """:func:`plan_binds`, with each target's directory created below its source (so that
    containerd finds the directory it expects)."""
    binds = plan_binds(host_view, targets)
    for target in HARD_CODED if targets is None else targets:
        host_path(host_view, target, binds).mkdir(parents=True, exist_ok=True)
    return binds


def host_path(host_view: Path, path: Path, binds: list[Bind] | None = None) -> Path:
    """Where a file that containerd's namespace sees at ``path`` is on the host."""
    for bind in binds if binds is not None else plan_binds(host_view):
        if path == bind.target or bind.target in path.parents:
            return bind.source / path.relative_to(bind.target)
    return path


def wrap(command: list[str], binds: list[Bind]) -> list[str]:
    """``command`` run in a new mount namespace with ``binds`` mounted (and made private)."""
    steps = []
    for bind in binds:
        source, target = shlex.quote(str(bind.source)), shlex.quote(str(bind.target))
        steps.append(f"mount --bind {source} {target} && mount --make-private {target}")
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script, "sh", *command]


def share(directory: Path) -> None:
    """Make ``directory`` a shared mount on the host (a bind mount onto itself, unless it is
    a mount point already), so that mounts below it propagate to and from the namespace.

    Raises:
        RuntimeError: ``mount`` failed (the message has its output).
    """
    if not any(m.mount_point == str(directory) for m in hostops.mounts_under(directory)):
        _mount("--bind", str(directory), str(directory))
    _mount("--make-shared", str(directory))


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"mount {' '.join(args)} failed: {result.stderr.strip()}")
