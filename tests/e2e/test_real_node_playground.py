"""e2e: ``csi-sidecars playground up --kubelet`` as a user and a script drive it.

playground.json says which Nodes a real kubelet runs and names the local images; a user's pod
runs from the busybox image, ``kubectl logs`` and ``kubectl exec`` reach it through the API
server and kubelet; SIGTERM stops pods, kubelet and containerd and leaves no mount behind.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from csi_sidecars.playground import binaries, hostops
from csi_sidecars.playground.process import poll_until
from tests.e2e.real_node_support import require_real_nodes

REPO = Path(__file__).resolve().parents[2]


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


async def test_up_with_kubelet_runs_pods_that_kubectl_logs_and_execs(tmp_path: Path) -> None:
    require_real_nodes()
    directory = tmp_path / "a-deep-directory-that-would-not-fit-kubelet-sockets" / "pg"
    log = (tmp_path / "up.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csi_sidecars", "playground", "up", f"--dir={directory}",
        "--kubelet", "--roles=provisioner,attacher,node-driver-registrar",
        f"--bin-dir={binaries.default_bin_dir()}",
        stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    try:

        async def described() -> dict[str, Any] | None:
            assert proc.returncode is None, (tmp_path / "up.log").read_text()
            path = directory / "playground.json"
            return json.loads(path.read_text()) if path.exists() else None

        info = await poll_until(described, 180, "playground.json")
        node = info["nodes"][0]
        assert node["name"] == "node-1" and node["kubelet"] is True
        busybox = info["images"]["busybox"]
        work_dir = Path(info["workDir"])
        # The sockets would not fit below the deep --dir: the work directory is a short one.
        assert (directory / "work").resolve() == work_dir.resolve()
        assert Path(node["kubeletRootDir"]).is_relative_to(work_dir)
        assert Path(node["pluginsRegistry"], "hostpath.csi.k8s.io-reg.sock").exists()
        kubeconfig = info["kubeconfig"]

        code, out = await _kubectl(
            kubeconfig, "run", "hello", f"--image={busybox}", "--image-pull-policy=IfNotPresent",
            "--restart=Never", "--command", "--", "sh", "-c", "echo hello-from-a-pod; sleep 600",
        )  # fmt: skip
        assert code == 0, out
        code, out = await _kubectl(
            kubeconfig, "wait", "--for=condition=Ready", "pod/hello", "--timeout=120s"
        )
        assert code == 0, out

        async def logged() -> str | None:
            code, text = await _kubectl(kubeconfig, "logs", "hello")
            return text if code == 0 and "hello-from-a-pod" in text else None

        await poll_until(logged, 30, "kubectl logs to show the pod's output")
        code, out = await _kubectl(kubeconfig, "exec", "hello", "--", "cat", "/proc/1/cmdline")
        assert code == 0 and "sleep" in out, out
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 90)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
    assert not hostops.mounts_under(work_dir)
    assert not hostops.processes_using(work_dir)
    assert not work_dir.exists()
    assert not (directory / "work").is_symlink()


async def test_up_without_kubelet_falls_back_to_api_only_nodes(tmp_path: Path) -> None:
    require_real_nodes()
    directory = tmp_path / "pg"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csi_sidecars", "playground", "up", f"--dir={directory}",
        "--no-kubelet", "--roles=none", f"--bin-dir={binaries.default_bin_dir()}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    try:

        async def described() -> dict[str, Any] | None:
            assert proc.returncode is None
            path = directory / "playground.json"
            return json.loads(path.read_text()) if path.exists() else None

        info = await poll_until(described, 120, "playground.json")
        assert info["nodes"] == [{"name": "node-1", "kubelet": False}]
        assert info["images"] == {}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
