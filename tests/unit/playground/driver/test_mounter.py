"""mounter: the default bookkeeping targets, mount-point detection, loop lookup, the choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_sidecars.playground.driver.model import BLOCK, MOUNT, Volume
from csi_sidecars.playground.driver.mounter import (
    BindMounts,
    PathTargets,
    is_mount_point,
    loop_devices_of,
    make_mounter,
)
from csi_sidecars.playground.driver.store import StateStore

MOUNTINFO = """\
100 27 254:0 /a /tmp/k/pods/p/volumes/v\\040x/mount rw - ext4 /dev/vda rw
101 27 254:0 /b /tmp/k/globalmount rw shared:2 - ext4 /dev/vda rw
"""


def test_path_targets_create_and_remove_without_mounting(tmp_path: Path) -> None:
    targets = PathTargets()
    vol = Volume("v", "n", 1, access_type=MOUNT)
    target = tmp_path / "pods" / "mount"
    targets.publish(vol, "", str(target), readonly=False)
    assert target.is_dir()
    targets.unpublish(vol, str(target))
    assert not target.exists()
    block = Volume("b", "n", 1, access_type=BLOCK)
    device = tmp_path / "dev" / "b"
    targets.publish(block, "", str(device), readonly=False)
    assert device.is_file()
    assert targets.release(str(device)) is False  # an unknown volume stays NOT_FOUND


def test_mount_points_are_recognised_with_escaped_spaces() -> None:
    assert is_mount_point("/tmp/k/pods/p/volumes/v x/mount", MOUNTINFO)
    assert is_mount_point("/tmp/k/globalmount", MOUNTINFO)
    assert not is_mount_point("/tmp/k", MOUNTINFO)


def test_loop_devices_are_found_by_backing_file(tmp_path: Path) -> None:
    sys_block = tmp_path / "block"
    for name, backing in (("loop0", "/s/volumes/a/block.img"), ("loop3", "/s/other")):
        (sys_block / name / "loop").mkdir(parents=True)
        (sys_block / name / "loop" / "backing_file").write_text(backing + "\n")
    (sys_block / "loop7").mkdir()  # unbound: no loop/ directory
    assert loop_devices_of(Path("/s/volumes/a/block.img"), sys_block) == ["/dev/loop0"]


def test_real_mounts_need_a_state_directory(tmp_path: Path) -> None:
    assert isinstance(make_mounter(False, None), PathTargets)
    with pytest.raises(ValueError, match="--statedir"):
        make_mounter(True, None)
    mounter = make_mounter(True, StateStore(tmp_path))
    assert isinstance(mounter, BindMounts)


def test_a_block_volumes_file_is_sparse_at_its_capacity(tmp_path: Path) -> None:
    mounter = BindMounts(StateStore(tmp_path))
    vol = Volume("v", "n", 4 << 20, access_type=BLOCK)
    path = mounter.block_file(vol)
    assert path.stat().st_size == 4 << 20
    assert path.stat().st_blocks * 512 < 4 << 20
