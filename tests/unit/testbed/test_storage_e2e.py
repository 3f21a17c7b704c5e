"""testbed/storage_e2e.py: the counts it reports, how it runs e2e.test, its substitute images."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _load() -> ModuleType:
    path = ROOT / "testbed" / "storage_e2e.py"
    spec = importlib.util.spec_from_file_location("storage_e2e", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


se = _load()

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="Kubernetes e2e suite">
  <testcase name="[SynchronizedBeforeSuite]"></testcase>
  <testcase name="[It] a passing spec"></testcase>
  <testcase name="[It] a failing spec"><failure message="boom">boom</failure></testcase>
  <testcase name="[It] an unsupported pattern">
    <skipped message="skipped - Driver x does not support ext4 -- skipping"/></testcase>
  <testcase name="[It] outside the focus"><skipped message="skipped"/></testcase>
  <testcase name="[It] outside the focus too"><skipped message="skipped"/></testcase>
</testsuite></testsuites>
"""


def test_counts_are_of_specs_that_ran_not_of_those_outside_the_focus(tmp_path: Path) -> None:
    (tmp_path / "junit_01.xml").write_text(JUNIT)
    assert se.summarize(tmp_path) == (1, 1, 1, ["[It] a failing spec"])


def _args(parallel: int) -> argparse.Namespace:
    return argparse.Namespace(focus="F", skip="S", timeout="1h", parallel=parallel)


def test_one_process_runs_e2e_test_itself(tmp_path: Path) -> None:
    cmd = se.e2e_command(tmp_path / "e2e.test", tmp_path, _args(1), ["--kubeconfig=k"])
    assert cmd[0] == str(tmp_path / "e2e.test")
    assert "--ginkgo.focus=F" in cmd and "--ginkgo.skip=S" in cmd
    assert cmd[-1] == "--kubeconfig=k"


def test_several_processes_run_through_ginkgo(tmp_path: Path) -> None:
    ginkgo = tmp_path / "ginkgo"
    ginkgo.write_text("#!/bin/sh\n")
    ginkgo.chmod(0o755)
    cmd = se.e2e_command(tmp_path / "e2e.test", tmp_path, _args(3), ["--kubeconfig=k"])
    assert cmd[:2] == [str(ginkgo), "--procs=3"]
    assert "--focus=F" in cmd and "--skip=S" in cmd
    # ginkgo's flags, then the test binary, then e2e.test's own flags after "--".
    assert cmd[cmd.index(str(tmp_path / "e2e.test")) + 1 :] == ["--", "--kubeconfig=k"]


def test_ldd_output_gives_the_libraries_and_the_loader() -> None:
    out = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f97)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f97)\n"
    )
    assert se.shared_libraries(out) == [
        Path("/lib/x86_64-linux-gnu/libc.so.6"),
        Path("/lib64/ld-linux-x86-64.so.2"),
    ]


def test_the_glibc_layer_has_gnu_dd_and_a_shell_that_is_not_busybox() -> None:
    entries = {e.path: e for e in se.gnu_tools_layer()}
    assert entries["bin/dd"].source is not None and entries["bin/dd"].source.name != "busybox"
    assert entries["bin/sh"].source is not None and entries["bin/sh"].source.name != "busybox"
    # Every library the binaries load is in the layer, below a directory entry.
    files = [e for e in entries.values() if e.kind == "file"]
    assert any(e.path.startswith("lib") for e in files)
    dirs = {p for p, e in entries.items() if e.kind == "dir"}
    assert all(str(Path(e.path).parent) in dirs | {"."} for e in files)


def test_default_skips_keep_the_slow_and_snapshot_specs() -> None:
    assert "[Slow]" not in se.DEFAULT_SKIP
    assert "VolumeSnapshotDataSource" not in se.DEFAULT_SKIP
    caps = se.test_driver("d")["DriverInfo"]["Capabilities"]
    assert caps["snapshotDataSource"] and caps["FSResizeFromSourceNotSupported"]


def test_the_glibc_images_path_reaches_every_busybox_applet() -> None:
    # dash, unlike busybox sh, finds applets (blockdev is in /sbin) only on PATH.
    from csi_sidecars.playground import images

    if not images.BUSYBOX_BINARY.exists():
        pytest.skip("busybox-static is not installed")
    applets = images.busybox_applets(images.BUSYBOX_BINARY)
    dirs = {"/" + str(Path(a).parent) for a in applets if "/" in a}  # not /linuxrc
    assert dirs <= set(se.GLIBC_PATH.split(":"))
