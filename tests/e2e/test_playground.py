"""`csi-sidecars playground` as a user and a script drive it: up, the files it writes, demo."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from csi_sidecars.playground import binaries
from csi_sidecars.playground.process import poll_until
from tests.e2e.conftest import require

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _kubectl(kubeconfig: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(binaries.binary("kubectl")),
        f"--kubeconfig={kubeconfig}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_up_writes_files_serves_kubectl_and_cleans_up(tmp_path: Path) -> None:
    require(*binaries.CONTROL_PLANE_BINARIES)
    directory = tmp_path / "pg"
    log = (tmp_path / "up.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csi_sidecars",
        "playground",
        "up",
        f"--dir={directory}",
        "--roles=livenessprobe,node-driver-registrar",
        f"--bin-dir={binaries.default_bin_dir()}",
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
    )
    try:

        async def described() -> dict[str, object] | None:
            assert proc.returncode is None, (tmp_path / "up.log").read_text()
            path = directory / "playground.json"
            return json.loads(path.read_text()) if path.exists() else None

        info = await poll_until(described, 120, "playground.json")
        assert (directory / "kubeconfig").exists()
        nodes = info["nodes"]
        assert isinstance(nodes, list)
        assert [n["name"] for n in nodes] == ["node-1"]
        assert all(isinstance(n["kubelet"], bool) for n in nodes)
        driver = info["driver"]
        assert isinstance(driver, dict)
        assert driver["name"] == "hostpath.csi.k8s.io"
        assert Path(driver["controllerSocket"]).exists()
        roles = info["roles"]
        assert isinstance(roles, list)
        assert sorted(r["name"] for r in roles) == ["livenessprobe", "node-driver-registrar"]
        pids = [int(r["pid"]) for r in roles]
        assert all(_alive(pid) for pid in pids)

        code, out = await _kubectl(
            str(directory / "kubeconfig"), "get", "nodes,csinodes,storageclasses"
        )
        assert code == 0, out
        assert "node/node-1" in out
        assert "csinode.storage.k8s.io/node-1" in out

        # RBAC is real: a sidecar identity is denied what its role does not grant.
        kubeconfigs = info["kubeconfigs"]
        assert isinstance(kubeconfigs, dict)
        code, out = await _kubectl(
            kubeconfigs["csi-attacher"], "auth", "can-i", "create", "persistentvolumes"
        )
        assert out.strip().splitlines()[-1] == "no", out
        code, out = await _kubectl(
            kubeconfigs["csi-provisioner"], "auth", "can-i", "create", "persistentvolumes"
        )
        assert out.strip().splitlines()[-1] == "yes", out
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()

    async def all_gone() -> bool:
        return not any(_alive(pid) for pid in pids)

    await poll_until(all_gone, 30, "playground processes to exit")
    assert not Path(driver["controllerSocket"]).exists()


async def test_demo_tour_reaches_every_state(tmp_path: Path) -> None:
    require(*binaries.CONTROL_PLANE_BINARIES)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csi_sidecars",
        "playground",
        "demo",
        f"--dir={tmp_path / 'demo'}",
        f"--bin-dir={binaries.default_bin_dir()}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "GET /healthz -> 200 ok" in text
    # Every step runs on our roles, none on a Go sidecar.
    assert "provisioning by csi-sidecars provisioner" in text
    assert "attaching by csi-sidecars attacher" in text
    assert "PV capacity 2Gi, PVC allocated 2Gi" in text  # the resizer step
    assert "persistentvolumeclaim/demo-pvc   Bound" in text
    assert "snapshot handle in the driver: " in text  # the snapshot step
    assert "restored volume " in text and "demo-restore   Bound" in text
    assert "skipped" not in text
    assert "left in the driver: volumes [], snapshots []" in text
    assert "every step reached its state" in text
