"""Run Kubernetes' External Storage e2e suites against the playground with our sidecars.

``testbed/storage-e2e.sh [--focus REGEX] [--skip REGEX]`` (this script) starts the playground with
a real kubelet node and every csi-sidecars role, tags the local images with the names e2e.test
uses (busybox, agnhost, pause: no registry is reachable), writes a test driver definition of
the playground driver, runs ``e2e.test`` (k8s.io/kubernetes v1.36.3, ``testbed/build.sh e2e``)
on the External Storage suites and prints the JUnit totals and failures. Not part of CI: the
suites take long on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
DEFAULT_FOCUS = r"External.Storage"
# Disruptive tests restart kubelet (ssh); Serial ones need the whole cluster; volume limits take
# very long; the rest need features the playground driver does not have.
DEFAULT_SKIP = (
    r"\[Disruptive\]|\[Serial\]|\[Slow\]|volumeLimits|\[Feature:(VolumeSnapshotDataSource"
    r"|Windows|SELinux|VolumeAttributesClass|SnapshotMetadata|volumegroupsnapshot)\]"
)


def test_driver(driver: str) -> dict[str, object]:
    """The external test driver definition of the playground driver."""
    return {
        "StorageClass": {"FromName": True},
        "SnapshotClass": {"FromName": True},
        "DriverInfo": {
            "Name": driver,
            "SupportedSizeRange": {"Min": "1Mi", "Max": "64Mi"},
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
            },
        },
        "InlineVolumes": [{"Attributes": {}, "Shared": False, "ReadOnly": False}],
    }


def e2e_images(bin_dir: Path, out: Path) -> list[Path]:
    """Image tars named as e2e.test expects: busybox, agnhost (on busybox) and pause."""
    busybox = images.busybox_spec()
    busybox.aliases = [E2E_BUSYBOX]
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
    tars = []
    for name, spec in (("busybox", busybox), ("pause", pause), ("agnhost", agnhost)):
        tar = out / f"e2e-{name}.tar"
        images.write_image(spec, tar)
        tars.append(tar)
    return tars


def summarize(report_dir: Path) -> tuple[int, int, int, list[str]]:
    """``(passed, failed, skipped, failed names)`` from the JUnit reports."""
    passed = failed = skipped = 0
    names: list[str] = []
    for junit in report_dir.glob("junit*.xml"):
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "?")
            if name.startswith("[") and "Suite]" in name:
                continue  # BeforeSuite/AfterSuite/report nodes, not specs
            if case.find("skipped") is not None:
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
        proc = await asyncio.create_subprocess_exec(
            str(e2e),
            f"--kubeconfig={work / 'kubeconfig'}",
            f"--storage.testdriver={driver_file}",
            f"--ginkgo.focus={args.focus}",
            f"--ginkgo.skip={args.skip}",
            f"--ginkgo.timeout={args.timeout}",
            "--ginkgo.no-color",
            "--ginkgo.silence-skips",
            f"--report-dir={report}",
            "--allowed-not-ready-nodes=0",
            env={**os.environ, "KUBECONFIG": str(work / "kubeconfig")},
        )
        code = await proc.wait()
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
    parser.add_argument("--keep", action="store_true", help="keep the playground directory")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
