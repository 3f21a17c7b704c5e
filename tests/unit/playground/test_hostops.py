"""hostops: mountinfo parsing and ordering, cgroup hierarchies, processes naming a directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csi_sidecars.playground import hostops

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
100 27 254:0 /tmp/tb/n/kubelet /tmp/tb/n/kubelet rw,relatime shared:50 - ext4 /dev/vda rw
101 100 254:0 /tmp/tb/d/vol /tmp/tb/n/kubelet/plugins/x/globalmount rw shared:50 - ext4 /dev/vda rw
102 100 254:0 /tmp/tb/d/vol /tmp/tb/n/kubelet/pods/p/volumes/v\\040x/mount rw - ext4 /dev/vda rw
103 27 254:0 /tmp/tb2 /tmp/tb2 rw - ext4 /dev/vda rw
broken line without separator
"""


def test_mountinfo_is_parsed_with_escapes_and_tags() -> None:
    mounts = hostops.parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 8
    by_point = {m.mount_point: m for m in mounts}
    assert "/tmp/tb/n/kubelet/pods/p/volumes/v x/mount" in by_point
    assert by_point["/tmp/tb/n/kubelet"].shared
    assert not by_point["/tmp/tb2"].shared
    assert by_point["/sys/fs/cgroup/cpu"].fs_type == "cgroup"


def test_mounts_under_a_root_come_deepest_first_and_exclude_lookalike_prefixes() -> None:
    found = [m.mount_point for m in hostops.mounts_under(Path("/tmp/tb"), MOUNTINFO)]
    assert found == [
        "/tmp/tb/n/kubelet/pods/p/volumes/v x/mount",
        "/tmp/tb/n/kubelet/plugins/x/globalmount",
        "/tmp/tb/n/kubelet",
    ]
    assert "/tmp/tb2" not in found


def test_cgroup_hierarchies_are_both_versions() -> None:
    assert hostops.cgroup_mounts(MOUNTINFO) == [
        ("/sys/fs/cgroup/cpu", "cgroup"),
        ("/sys/fs/cgroup/unified", "cgroup2"),
    ]


def test_processes_using_a_directory_are_found_by_command_line(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, cmdline in (
        ("10", b"containerd-shim-runc-v2\0-address\0/tmp/tb/n/containerd/containerd.sock\0"),
        ("11", b"sleep\0600\0"),
        ("12", b"ls\0/tmp/tb2/file\0"),
        ("13", b"cat\0/tmp/tb\0"),
        ("self", b""),
    ):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(cmdline)
    (proc / "14").mkdir()  # exited meanwhile: no cmdline
    assert hostops.processes_using(Path("/tmp/tb"), proc) == [10, 13]


def test_unmount_of_a_path_that_is_not_mounted_says_so(tmp_path: Path) -> None:
    assert hostops.unmount(str(tmp_path)) is False


def test_release_loop_devices_without_any_is_a_no_op(tmp_path: Path) -> None:
    sys_block = tmp_path / "block"
    (sys_block / "loop0" / "loop").mkdir(parents=True)
    (sys_block / "loop0" / "loop" / "backing_file").write_text("/elsewhere/file\n")
    (sys_block / "sda").mkdir()
    assert hostops.release_loop_devices(Path("/tmp/tb"), sys_block) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root may delete any link")
def test_deleting_a_missing_link_is_false() -> None:
    assert hostops.delete_link("csitb-none0") is False
