"""``python -m csi_sidecars csi`` as a process against the playground driver as a process, the
way a driver author runs it: -v=5 request logging with secrets stripped, exit codes, and a
``--help`` that loads no gRPC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SECRET = "s3cr3t-value-never-shown"


def _csi(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csi_sidecars", "csi", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def driver_socket(short_dir: Path) -> Iterator[Path]:
    sock = short_dir / "csi.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_sidecars.playground.driver",
            f"--endpoint=unix://{sock}",
            "--nodeid=node-1",
            f"--statedir={short_dir / 'state'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, "driver exited early"
            assert time.monotonic() < deadline, "driver socket did not appear"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def test_v5_logs_requests_and_replies_without_secrets(driver_socket: Path) -> None:
    env = {"CSI_ENDPOINT": f"unix://{driver_socket}", "MY_SECRETS": f'{{"token": "{SECRET}"}}'}
    created = _csi(
        "-v=5",
        "controller",
        "create-volume",
        "pvc-1",
        "--size",
        "1Gi",
        "--secrets-env",
        "MY_SECRETS",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    vol_id = json.loads(created.stdout)["volume"]["volume_id"]
    assert '"GRPC call" method="/csi.v1.Controller/CreateVolume"' in created.stderr
    assert '\\"secrets\\":\\"***stripped***\\"' in created.stderr
    assert '"GRPC response"' in created.stderr and vol_id in created.stderr
    deleted = _csi(
        "controller", "delete-volume", vol_id, "--secrets-env", "MY_SECRETS", "-v", "5", env=env
    )
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {}
    for proc in (created, deleted):
        assert SECRET not in proc.stdout + proc.stderr
    missing = _csi("controller", "get-volume", vol_id, env=env)
    assert missing.returncode == 11
    assert "rpc error: code = NotFound" in missing.stderr


def test_check_as_a_process(driver_socket: Path) -> None:
    proc = _csi("--endpoint", str(driver_socket), "check", "-o", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] is True
    assert len(data["steps"]) > 20


def test_help_loads_neither_grpc_nor_protobuf() -> None:
    code = (
        "import sys\n"
        "from csi_sidecars.cli import main\n"
        "try:\n"
        "    main(['csi', 'controller', 'create-volume', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('grpc', 'google', 'yaml', 'structlog'))\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Usage:" in proc.stdout
    assert "HEAVY []" in proc.stdout, proc.stdout
