"""The playground driver passes csi-sanity (kubernetes-csi/csi-test), run as a process.

csi-sanity comes from ``testbed/build.sh``. Without it the tests skip, except under CI=true,
where a missing binary is a failure.

The testbed builds csi-sanity v5.6.0. v5.4.0's connect loop waited for a state change *away*
from the one it last read, so a connection that became READY before its first look made it wait
a minute and fail "Connection timed out" (the loaded-machine flake of these runs); it also
predates CSI v1.12's GET_SNAPSHOT controller capability and fails "should return appropriate
capabilities" on it, so with a testbed still holding v5.4.0 the runs remove that capability.
PUBLISH_READONLY is added so the readonly republish test runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from csi_sidecars.playground import binaries

CONFIGS = {
    "attach-modify-limits": [
        "--enable-attach",
        "--enable-controller-modify-volume",
        "--accepted-mutable-parameter-names=realKey",
        "--attach-limit=8",
        "--add-capability=controller:PUBLISH_READONLY",
    ],
    "defaults": [],
}
#: Versions that fail on GET_SNAPSHOT (the stamp testbed/build.sh writes next to the binary).
WITHOUT_GET_SNAPSHOT = {"v5.4.0"}


def _version(binary: Path) -> str:
    stamp = binary.parent / f".{binary.name}.version"
    return stamp.read_text().strip() if stamp.is_file() else ""


def _csi_sanity() -> Path:
    try:
        return binaries.binary("csi-sanity")
    except FileNotFoundError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"csi-sanity is required in CI: {err}")
        pytest.skip(f"csi-sanity not built: {err}")


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket path fits in sockaddr_un even when tmp_path is long."""
    if len(str(tmp_path / "csi.sock")) <= 100:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="csi-sanity-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _wait_for_socket(proc: subprocess.Popen[bytes], path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "driver exited early"
        assert time.monotonic() < deadline, "driver socket did not appear"
        time.sleep(0.05)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_csi_sanity(config: str, tmp_path: Path, short_dir: Path) -> None:
    sanity = _csi_sanity()
    sock = short_dir / "csi.sock"
    log_path = tmp_path / "driver.log"
    mutable = tmp_path / "mutable.yaml"
    mutable.write_text("realKey: realValue\n")
    driver_args = [
        sys.executable,
        "-m",
        "csi_sidecars.playground.driver",
        f"--endpoint=unix://{sock}",
        "--nodeid=sanity-node",
        f"--statedir={tmp_path / 'state'}",
        *CONFIGS[config],
    ]
    if _version(sanity) in WITHOUT_GET_SNAPSHOT:
        driver_args.append("--remove-capability=controller:GET_SNAPSHOT")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(driver_args, stdout=log, stderr=log)
    try:
        _wait_for_socket(proc, sock)
        sanity_args = [
            str(sanity),
            f"--csi.endpoint=unix://{sock}",
            f"--csi.mountdir={tmp_path / 'mount'}",
            f"--csi.stagingdir={tmp_path / 'staging'}",
            "--ginkgo.no-color",
        ]
        if "--enable-attach" in CONFIGS[config]:
            sanity_args += [
                f"--csi.testvolumemutableparameters={mutable}",
                "--csi.testnodevolumeattachlimit",
            ]
        result = subprocess.run(
            sanity_args,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    output = result.stdout + result.stderr
    summary = output[output.find("Summarizing") :] if "Summarizing" in output else output[-3000:]
    assert result.returncode == 0, f"csi-sanity failed:\n{summary}"
    assert " 0 Failed" in output
    assert code == 0, log_path.read_text()[-2000:]
