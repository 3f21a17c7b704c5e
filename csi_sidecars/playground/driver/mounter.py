"""What the playground driver's node service does to the filesystem.

Two implementations of one small interface, chosen by ``--mount-volumes``:

* :class:`PathTargets` (the default, for component tests and API-only nodes): nothing is mounted;
  NodePublishVolume creates the target (a directory, or a file for block volumes) and
  NodeUnpublishVolume removes it, as the CSI spec asks of a plugin.
* :class:`BindMounts` (real kubelet nodes; needs root): NodeStageVolume bind-mounts the volume's
  directory in the state directory at the staging path, NodePublishVolume bind-mounts the staging
  path at the target (read-only when asked), and the reverses unmount. A block volume is a sparse
  file ``block.img`` in the volume's directory, attached to a loop device at publish and bound at
  the target file, as csi-driver-host-path does.

Every operation is idempotent: a second stage, publish or unpublish of the same path finds the
mount (or its absence) in ``/proc/self/mountinfo`` and does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Protocol

import grpc

from csi_sidecars.playground.driver.model import BLOCK, CsiError, Volume
from csi_sidecars.playground.driver.store import StateStore

Code = grpc.StatusCode

_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MNT_DETACH = 2
_LOOP_SET_FD = 0x4C00
_LOOP_CLR_FD = 0x4C01
_LOOP_SET_CAPACITY = 0x4C07
_LOOP_CTL_GET_FREE = 0x4C82
BLOCK_FILE = "block.img"


class Mounter(Protocol):
    """The filesystem side of NodeStage/Unstage/Publish/Unpublish."""

    def stage(self, vol: Volume, staging: str) -> None:
        """Make ``vol`` available at the staging path."""

    def unstage(self, vol: Volume, staging: str) -> None:
        """Undo :meth:`stage`."""

    def publish(self, vol: Volume, staging: str, target: str, readonly: bool) -> None:
        """Make ``vol`` available at ``target`` (from ``staging`` when it was staged)."""

    def unpublish(self, vol: Volume, target: str) -> None:
        """Undo :meth:`publish` and remove ``target``."""

    def expand(self, vol: Volume, capacity: int) -> None:
        """Grow what backs ``vol`` on the node to ``capacity`` bytes."""

    def release(self, path: str) -> bool:
        """Unmount and remove ``path`` of a volume the driver no longer knows; whether there
        was anything to release."""


def _internal(what: str, err: OSError) -> CsiError:
    return CsiError(Code.INTERNAL, f"{what}: {err}")


class PathTargets:
    """Bookkeeping only: targets are created and removed, nothing is mounted."""

    def stage(self, vol: Volume, staging: str) -> None:
        """Nothing to do."""

    def unstage(self, vol: Volume, staging: str) -> None:
        """Nothing to do."""

    def publish(self, vol: Volume, staging: str, target: str, readonly: bool) -> None:
        """Create the target: a file for block volumes, else a directory."""
        path = Path(target)
        try:
            if vol.access_type == BLOCK:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(exist_ok=True)
            else:
                path.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as err:
            raise _internal("create target path", err) from err

    def unpublish(self, vol: Volume, target: str) -> None:
        """Remove the target."""
        path = Path(target)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as err:
            raise _internal("remove target path", err) from err

    def expand(self, vol: Volume, capacity: int) -> None:
        """Nothing backs the volume."""

    def release(self, path: str) -> bool:
        """Nothing was mounted: an unknown volume stays NOT_FOUND."""
        return False


# -- real mounts ------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, flags: int) -> None:
    if _libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def is_mount_point(path: str, mountinfo: str | None = None) -> bool:
    """Whether ``path`` is a mount point (by ``/proc/self/mountinfo``)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    wanted = os.path.realpath(path) if mountinfo is None else path
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == wanted:
            return True
    return False


def loop_devices_of(backing: Path, sys_block: Path = Path("/sys/block")) -> list[str]:
    """The loop devices (``/dev/loopN``) whose backing file is ``backing``."""
    wanted = str(backing)
    found = []
    for entry in sorted(sys_block.glob("loop*")):
        with contextlib.suppress(OSError):
            if (entry / "loop" / "backing_file").read_text().strip() == wanted:
                found.append(f"/dev/{entry.name}")
    return found


def attach_loop(backing: Path) -> str:
    """Attach ``backing`` to a free loop device (or return the one it is attached to)."""
    existing = loop_devices_of(backing)
    if existing:
        return existing[0]
    for _ in range(10):
        ctl = os.open("/dev/loop-control", os.O_RDWR)
        try:
            number = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        device = f"/dev/loop{number}"
        dev_fd = os.open(device, os.O_RDWR)
        file_fd = os.open(backing, os.O_RDWR)
        try:
            fcntl.ioctl(dev_fd, _LOOP_SET_FD, file_fd)
            return device
        except OSError as err:
            if err.errno != errno.EBUSY:  # another process took it meanwhile: try the next
                raise
        finally:
            os.close(file_fd)
            os.close(dev_fd)
    raise OSError(errno.EBUSY, "no free loop device")


def detach_loops(backing: Path) -> None:
    """Detach every loop device backed by ``backing``."""
    for device in loop_devices_of(backing):
        fd = os.open(device, os.O_RDWR)
        try:
            fcntl.ioctl(fd, _LOOP_CLR_FD, 0)
        except OSError as err:
            if err.errno != errno.ENXIO:
                raise
        finally:
            os.close(fd)


class BindMounts:
    """Real mounts under kubelet's directories, backed by the state directory's volumes."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def _source_dir(self, vol: Volume) -> Path:
        path = self.store.volume_path(vol.volume_id)
        path.mkdir(mode=0o777, parents=True, exist_ok=True)
        return path

    def block_file(self, vol: Volume) -> Path:
        """The sparse file behind a block volume (created at its capacity when missing)."""
        path = self._source_dir(vol) / BLOCK_FILE
        if not path.exists() or path.stat().st_size < vol.capacity_bytes:
            with path.open("ab") as f:
                f.truncate(max(vol.capacity_bytes, 1 << 20))
        return path

    def stage(self, vol: Volume, staging: str) -> None:
        """Bind the volume's directory at ``staging`` (block volumes are bound at publish)."""
        if vol.access_type == BLOCK:
            return
        try:
            Path(staging).mkdir(mode=0o750, parents=True, exist_ok=True)
            if not is_mount_point(staging):
                _mount(str(self._source_dir(vol)), staging, _MS_BIND)
        except OSError as err:
            raise _internal("stage", err) from err

    def unstage(self, vol: Volume, staging: str) -> None:
        """Unmount ``staging``; kubelet removes the directory."""
        try:
            if is_mount_point(staging):
                _umount(staging)
        except OSError as err:
            raise _internal("unstage", err) from err

    def publish(self, vol: Volume, staging: str, target: str, readonly: bool) -> None:
        """Bind the staged volume (or its directory, when unstaged) at ``target``."""
        try:
            if is_mount_point(target):
                return
            if vol.access_type == BLOCK:
                device = attach_loop(self.block_file(vol))
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).touch(exist_ok=True)
                _mount(device, target, _MS_BIND)
            else:
                source = staging if staging and is_mount_point(staging) else None
                Path(target).mkdir(mode=0o750, parents=True, exist_ok=True)
                _mount(source or str(self._source_dir(vol)), target, _MS_BIND)
            if readonly:
                _mount("none", target, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
        except OSError as err:
            raise _internal("publish", err) from err

    def unpublish(self, vol: Volume, target: str) -> None:
        """Unmount ``target`` and remove it; detach the loop device of a block volume."""
        try:
            while is_mount_point(target):
                _umount(target)
            path = Path(target)
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
            if vol.access_type == BLOCK and len(vol.published) <= 1:
                detach_loops(self.store.volume_path(vol.volume_id) / BLOCK_FILE)
        except OSError as err:
            raise _internal("unpublish", err) from err

    def expand(self, vol: Volume, capacity: int) -> None:
        """Grow a block volume's file and tell its loop devices (directories need nothing)."""
        if vol.access_type != BLOCK:
            return
        try:
            path = self.store.volume_path(vol.volume_id) / BLOCK_FILE
            if path.exists() and path.stat().st_size < capacity:
                with path.open("ab") as f:
                    f.truncate(capacity)
            for device in loop_devices_of(path):
                fd = os.open(device, os.O_RDWR)
                try:
                    fcntl.ioctl(fd, _LOOP_SET_CAPACITY, 0)
                finally:
                    os.close(fd)
        except OSError as err:
            raise _internal("expand", err) from err

    def release(self, path: str) -> bool:
        """Unmount ``path`` (and remove a publish target) left by a deleted volume.

        kubelet retries NodeUnpublish/NodeUnstage until they succeed; when the volume was
        deleted under a mounted pod, answering NOT_FOUND would leave the mount forever.
        """
        try:
            found = False
            while is_mount_point(path):
                _umount(path)
                found = True
            target = Path(path)
            if found and target.is_file():
                target.unlink()
            return found
        except OSError as err:
            raise _internal("release", err) from err


def make_mounter(mount_volumes: bool, store: StateStore | None) -> Mounter:
    """The mounter for ``--mount-volumes`` (real mounts need a state directory).

    Raises:
        ValueError: real mounts without a state directory.
    """
    if not mount_volumes:
        return PathTargets()
    if store is None:
        raise ValueError("--mount-volumes needs --statedir (volumes live there)")
    return BindMounts(store)
