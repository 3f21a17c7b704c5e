"""Host-level clean-up for real nodes: mounts, cgroups, network links and stray processes.

A node with a real kubelet and containerd leaves kernel state behind that deleting its work
directory does not remove: bind mounts (kubelet's rshared root, the CSI driver's staging and
publish mounts, containerd's overlay and shm mounts), loop devices of block volumes, the cgroup
tree the node's pods ran in, a
CNI bridge, and containerd shims, which outlive containerd on purpose. These helpers find and
remove exactly what belongs to one testbed, by path prefix or recorded name, so that a clean
stop leaves nothing and a crashed run can be swept by the next one. Read-only queries
(:func:`mounts_under`, :func:`processes_using`) are pure over ``/proc`` text so tests can feed
them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from csi_sidecars.runtime.logging import get_logger

log = get_logger("testbed")

_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
_libc: ctypes.CDLL | None = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``, reduced to what clean-up needs."""

    mount_point: str
    fs_type: str
    source: str
    optional: tuple[str, ...]

    @property
    def shared(self) -> bool:
        """Whether the mount is in a shared peer group (``shared:N``)."""
        return any(tag.startswith("shared:") for tag in self.optional)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field) >= i + 4:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse the text of ``/proc/<pid>/mountinfo`` (malformed lines are skipped)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1]), tuple(fields[6:])))
    return mounts


def _within(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def mounts_under(root: Path, mountinfo: str | None = None) -> list[Mount]:
    """Mounts at or below ``root``, deepest (last mounted) first: the order to unmount them."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    found = [m for m in parse_mountinfo(text) if _within(m.mount_point, str(root))]
    # Later lines are mounted later (on top); unmount those first, and deeper paths first.
    indexed = list(enumerate(found))
    indexed.sort(key=lambda im: (-im[1].mount_point.count("/"), -im[0]))
    return [m for _, m in indexed]


def unmount(path: str) -> bool:
    """Lazily unmount ``path`` (``MNT_DETACH``); return False when it was not mounted."""
    if _libc is None:
        result = subprocess.run(["umount", "-l", path], capture_output=True, check=False)
        return result.returncode == 0
    if _libc.umount2(path.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return False
    raise OSError(err, f"umount {path}: {os.strerror(err)}")


def unmount_all(root: Path) -> int:
    """Unmount everything at or below ``root``; returns how many mounts were removed.

    Repeats until nothing is left, because a bind mount of a shared mount can reappear under
    another path while its peers go.
    """
    removed = 0
    for _ in range(10):
        found = mounts_under(root)
        if not found:
            break
        for mount in found:
            try:
                if unmount(mount.mount_point):
                    removed += 1
            except OSError as err:
                log.warning("Unmount failed", path=mount.mount_point, error=str(err))
    return removed


# -- cgroups ---------------------------------------------------------------------------------


def cgroup_mounts(mountinfo: str | None = None) -> list[tuple[str, str]]:
    """``(mount point, fs type)`` of every cgroup hierarchy (v1 ``cgroup`` and ``cgroup2``)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    return [
        (m.mount_point, m.fs_type)
        for m in parse_mountinfo(text)
        if m.fs_type in ("cgroup", "cgroup2")
    ]


def create_cgroup(name: str) -> list[Path]:
    """Create cgroup ``/<name>`` in every hierarchy kubelet checks; return the directories.

    kubelet refuses a ``cgroupRoot`` that does not exist. On a cgroup v1 host that is every
    ``cgroup`` hierarchy; on a unified (v2 only) host the single ``cgroup2`` one.
    """
    mounts = cgroup_mounts()
    v1 = [mp for mp, kind in mounts if kind == "cgroup"]
    targets = v1 or [mp for mp, kind in mounts if kind == "cgroup2"]
    made = []
    for mount_point in targets:
        path = Path(mount_point) / name.strip("/")
        path.mkdir(parents=True, exist_ok=True)
        made.append(path)
    return made


def _kill_cgroup_members(path: Path) -> None:
    for procs in path.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)


def remove_cgroup(name: str) -> None:
    """Remove cgroup ``/<name>`` and everything below it from every hierarchy.

    Processes still in it are killed first (they are a dead testbed's containers); a
    directory that cannot be removed is logged and left.
    """
    for mount_point, _ in cgroup_mounts():
        top = Path(mount_point) / name.strip("/")
        if not top.is_dir():
            continue
        _kill_cgroup_members(top)
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for path in [*dirs, top]:
            for _ in range(20):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno != errno.EBUSY:
                        log.warning("Cannot remove cgroup", path=str(path), error=str(err))
                        break
                    _kill_cgroup_members(path)
                    # The kernel frees a cgroup a moment after its last process exits.
                    os.sched_yield()


# -- loop devices ------------------------------------------------------------------------------

_LOOP_CLR_FD = 0x4C01
_LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64_SIZE = 232


def _loop_backing(device: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file behind loop ``device`` (None when it is unbound)."""
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError:
        return None
    try:
        info = fcntl.ioctl(fd, _LOOP_GET_STATUS64, bytes(_LOOP_INFO64_SIZE))
    except OSError:
        return None
    finally:
        os.close(fd)
    lo_device, lo_inode = struct.unpack_from("=QQ", info)
    return lo_device, lo_inode


def _detach(device: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(device, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, _LOOP_CLR_FD, 0)
        finally:
            os.close(fd)


def release_loop_devices(root: Path, sys_block: Path = Path("/sys/block")) -> int:
    """Detach loop devices backed by files under ``root`` and those stacked on them.

    The playground driver backs block volumes with a loop device on a file in its state
    directory; kubelet puts a second loop device on top of the published device to pin it.
    Stopping pods behind kubelet's back leaves both; returns how many were detached.
    """
    prefix = str(root).rstrip("/") + "/"
    ours = []
    for entry in sorted(sys_block.glob("loop*")):
        with contextlib.suppress(OSError):
            if (entry / "loop" / "backing_file").read_text().strip().startswith(prefix):
                ours.append(f"/dev/{entry.name}")
    if not ours:
        return 0
    keys = set()
    for device in ours:
        with contextlib.suppress(OSError):
            st = os.stat(device)
            keys.add((st.st_dev, st.st_ino))
    stacked = [
        f"/dev/{e.name}"
        for e in sorted(sys_block.glob("loop*"))
        if f"/dev/{e.name}" not in ours and _loop_backing(f"/dev/{e.name}") in keys
    ]
    for device in [*stacked, *ours]:
        _detach(device)
    return len(stacked) + len(ours)


# -- network links and processes -------------------------------------------------------------


def link_exists(name: str) -> bool:
    """Whether a network interface called ``name`` exists."""
    return Path("/sys/class/net", name).exists()


def delete_link(name: str) -> bool:
    """Delete network interface ``name`` (a CNI bridge); False when there was none."""
    if not link_exists(name):
        return False
    result = subprocess.run(
        ["ip", "link", "delete", name], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and link_exists(name):
        log.warning("Cannot delete link", link=name, error=result.stderr.strip())
        return False
    return True


def processes_using(root: Path, proc: Path = Path("/proc")) -> list[int]:
    """PIDs with an argument naming ``root`` or a path below it (e.g. containerd shims)."""
    base = str(root).rstrip("/")
    own = os.getpid()
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a == base or a.endswith("=" + base) or base + "/" in a for a in args):
            pids.append(int(entry.name))
    return sorted(pids)


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL every pid in ``pids`` (gone ones are ignored)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
