"""Run Kubernetes' External Storage e2e suites against the playground with our sidecars.

``testbed/storage-e2e.sh [--focus REGEX] [--skip REGEX] [--parallel N]`` (this script) starts
the playground with a real kubelet node and every csi-sidecars role, tags the local images with
the names e2e.test uses (busybox, agnhost, pause: no registry is reachable), writes a test
driver definition of the playground driver, runs ``e2e.test`` (k8s.io/kubernetes v1.36.3,
``testbed/build.sh e2e``; through ``ginkgo --procs`` with ``--parallel``) on the External
Storage suites and prints the JUnit totals and failures. Not part of CI: the suites take long
on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from csi_sidecars.playground import binaries, images, objects
from csi_sidecars.playground.images import Entry, ImageSpec
from csi_sidecars.playground.session import Playground, available_roles

#: The images e2e.test v1.36.3 names (test/utils/image/manifest.go) that storage tests use.
E2E_BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
E2E_AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
E2E_PAUSE = "registry.k8s.io/pause:3.10.2"
#: The exec tests run a shell script from the volume in "nginx"; busybox's sh does the same.
E2E_NGINX = "registry.k8s.io/e2e-test-images/nginx:1.15-4"
#: multiVolume's concurrent-access pods run dd, sha256sum and base64 in "glibc-dns-testing";
#: busybox with the host's GNU dd (``oflag=nocache``, which busybox's dd lacks) and dash as
#: /bin/sh (Debian's busybox sh runs its own applets before anything on PATH) does the same.
E2E_GLIBC_DNS = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0"
#: Host tools the e2e pods call with options busybox lacks, by their path in the image.
GNU_TOOLS = {"bin/dd": "dd", "bin/sh": "dash"}
GLIBC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_FOCUS = r"External.Storage"
# Disruptive tests restart kubelet (ssh); Serial ones need the whole cluster; volume limits take
# very long; "unused volumes" looks into a hard-coded /var/lib/kubelet (volumemode.go), which the
# testbed's nodes do not use; the rest need features the playground driver does not have. [Slow]
# specs run: multiVolume, volume-expand and snapshottable are mostly [Slow].
DEFAULT_SKIP = (
    r"\[Disruptive\]|\[Serial\]|volumeLimits|should not mount / map unused volumes"
    r"|\[Feature:(Windows|SELinux|VolumeAttributesClass|SnapshotMetadata|volumegroupsnapshot)\]"
)


def test_driver(driver: str) -> dict[str, object]:
    """The external test driver definition of the playground driver."""
    return {
        "StorageClass": {"FromName": True},
        "SnapshotClass": {"FromName": True},
        "DriverInfo": {
            "Name": driver,
            # Sizes are bookkeeping (block volumes are sparse files), so anything goes.
            "SupportedSizeRange": {"Min": "1Mi", "Max": "10Gi"},
            "SupportedFsType": {"": {}},
            "TopologyKeys": [objects.TOPOLOGY_KEY],
            "Capabilities": {
                "persistence": True,
                "block": True,
                "exec": True,
                "multipods": True,
                "singleNodeVolume": True,
                "topology": True,
                "snapshotDataSource": True,
                "pvcDataSource": True,
                "controllerExpansion": True,
                "nodeExpansion": True,
                "onlineExpansion": True,
                "offlineExpansion": True,
                "fsGroup": False,
                "readWriteOncePod": True,
                # Filesystem volumes are directories on the host's filesystem (statfs says the
                # host's size), as csi-driver-host-path's: a restore cannot grow a filesystem.
                "FSResizeFromSourceNotSupported": True,
            },
        },
        "InlineVolumes": [{"Attributes": {}, "Shared": False, "ReadOnly": False}],
    }


def shared_libraries(ldd_output: str) -> list[Path]:
    """The files ``ldd`` says a binary loads (the dynamic loader included)."""
    found = []
    for line in ldd_output.splitlines():
        words = line.split()
        path = words[2] if len(words) > 2 and words[1] == "=>" else words[0] if words else ""
        if path.startswith("/"):
            found.append(Path(path))
    return found


def gnu_tools_layer(tools: dict[str, str] | None = None) -> list[Entry]:
    """A layer with the host's ``tools`` (image path: command, default :data:`GNU_TOOLS`) and
    the shared libraries they load, at the paths the binaries name them by (over busybox's
    applet links)."""
    files: dict[str, Path] = {}
    for name, tool in (GNU_TOOLS if tools is None else tools).items():
        found = shutil.which(tool)
        if found is None:
            raise FileNotFoundError(f"{tool} is missing (apt-get install coreutils dash)")
        binary = Path(found).resolve()
        files[name] = binary
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
        for lib in shared_libraries(ldd.stdout):
            files[str(lib).lstrip("/")] = lib.resolve()
    dirs = {str(parent) for name in files for parent in Path(name).parents if str(parent) != "."}
    entries = [Entry(d, "dir", mode=0o755) for d in sorted(dirs)]
    return entries + [Entry(name, source=src, mode=0o755) for name, src in sorted(files.items())]


def e2e_images(bin_dir: Path, out: Path) -> list[Path]:
    """Image tars named as e2e.test expects: busybox (also as nginx), agnhost (on busybox),
    glibc-dns-testing (busybox with GNU tools) and pause."""
    busybox = images.busybox_spec()
    busybox.aliases = [E2E_BUSYBOX, E2E_NGINX]
    pause = images.pause_spec(bin_dir)
    pause.aliases = [E2E_PAUSE]
    agnhost = ImageSpec(
        E2E_AGNHOST,
        layers=[
            busybox.layers[0],
            [Entry("agnhost", source=binaries.binary("agnhost", bin_dir), mode=0o755)],
        ],
        entrypoint=["/agnhost"],
    )
    glibc = ImageSpec(
        E2E_GLIBC_DNS,
        layers=[busybox.layers[0], gnu_tools_layer()],
        cmd=["sh"],
        # dash looks commands up on PATH, and some applets (blockdev) are in /sbin.
        env=[f"PATH={GLIBC_PATH}"],
    )
    tars = []
    images_ = (("busybox", busybox), ("pause", pause), ("agnhost", agnhost), ("glibc", glibc))
    for name, spec in images_:
        tar = out / f"e2e-{name}.tar"
        images.write_image(spec, tar)
        tars.append(tar)
    return tars


def e2e_command(
    e2e: Path, bin_dir: Path, args: argparse.Namespace, e2e_args: list[str]
) -> list[str]:
    """The command line running ``e2e.test``: directly, or through ``ginkgo --procs`` when
    ``--parallel`` asks for more than one process (e2e.test alone runs specs one by one)."""
    ginkgo = {
        "focus": args.focus,
        "skip": args.skip,
        "timeout": args.timeout,
    }
    if args.parallel <= 1:
        flags = [f"--ginkgo.{k}={v}" for k, v in ginkgo.items()]
        return [str(e2e), *flags, "--ginkgo.no-color", "--ginkgo.silence-skips", *e2e_args]
    flags = [f"--{k}={v}" for k, v in ginkgo.items()]
    return [
        str(binaries.binary("ginkgo", bin_dir)),
        f"--procs={args.parallel}",
        *flags,
        "--no-color",
        "--silence-skips",
        str(e2e),
        "--",
        *e2e_args,
    ]


def summarize(report_dir: Path) -> tuple[int, int, int, list[str]]:
    """``(passed, failed, skipped, failed names)`` from the JUnit reports; skipped counts the
    specs that ran and skipped themselves (an unsupported pattern or capability)."""
    passed = failed = skipped = 0
    names: list[str] = []
    for junit in report_dir.glob("junit*.xml"):
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "?")
            if name.startswith("[") and "Suite]" in name:
                continue  # BeforeSuite/AfterSuite/report nodes, not specs
            skip = case.find("skipped")
            if skip is not None:
                # Specs outside focus/skip are listed too, with the bare message "skipped";
                # a skip at run time says why ("skipped - Driver ... does not support ...").
                if skip.get("message", "skipped") != "skipped":
                    skipped += 1
            elif case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                names.append(name)
            else:
                passed += 1
    return passed, failed, skipped, names


async def run(args: argparse.Namespace) -> int:
    """Start the playground, run e2e.test against it, stop; returns e2e.test's status."""
    bin_dir = binaries.default_bin_dir()
    e2e = binaries.binary("e2e.test", bin_dir)
    work = Path(tempfile.mkdtemp(prefix="csi-pg-e2e-"))
    pg = Playground(
        directory=work,
        bin_dir=bin_dir,
        roles=available_roles(),
        kubelet=True,
        nodes=args.nodes,
        remove_directory=not args.keep,
    )
    began = time.monotonic()
    await pg.start()
    try:
        cp = pg.control_plane
        for tar in e2e_images(bin_dir, work / "images"):
            await cp.import_image(tar)
        driver_file = work / "testdriver.json"
        driver_file.write_text(json.dumps(test_driver(cp.driver_name), indent=2))
        report = work / "report"
        report.mkdir()
        print(f"playground ready in {time.monotonic() - began:.0f}s: {work}", flush=True)
        e2e_args = [
            f"--kubeconfig={work / 'kubeconfig'}",
            f"--storage.testdriver={driver_file}",
            f"--report-dir={report}",
            "--allowed-not-ready-nodes=0",
            # Some checks look into kubelet's directory on the node through a hostPath pod.
            f"--kubelet-root-dir={cp.real_nodes['node-1'].paths.root}",
        ]
        proc = await asyncio.create_subprocess_exec(
            *e2e_command(e2e, bin_dir, args, e2e_args),
            env={**os.environ, "KUBECONFIG": str(work / "kubeconfig")},
        )
        try:
            code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
        passed, failed, skipped, names = summarize(report)
        print(
            f"\nstorage e2e: {passed} passed, {failed} failed, {skipped} skipped "
            f"in {time.monotonic() - began:.0f}s (e2e.test exit {code})"
        )
        for name in names:
            print(f"  FAILED {name}")
        return code
    finally:
        await pg.stop()


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--focus", default=DEFAULT_FOCUS, help="ginkgo focus regex")
    parser.add_argument("--skip", default=DEFAULT_SKIP, help="ginkgo skip regex")
    parser.add_argument("--timeout", default="3h", help="ginkgo timeout")
    parser.add_argument(
        "--parallel", type=int, default=1, help="ginkgo processes (specs run side by side)"
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="real nodes (topology specs need 2; e2e.test assumes one kubelet root directory)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the playground directory")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
