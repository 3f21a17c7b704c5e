"""e2e: a real node's footprint on the host, after a clean stop and after a crash.

A control plane with a kubelet node runs pods with CSI volumes (mounts by kubelet, containerd
and the driver), a pod on the node's bridge and a block volume; a clean stop must leave no mount,
process, cgroup, bridge or loop device behind, and touch no host path it should not: not even
/run/containerd/s and /var/lib/cni, which containerd 1.6 hard-codes. A run killed with SIGKILL
leaves containerd's shims and containers, mounts and the rest: the next testbed's start-up
sweep must remove all of it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from csi_sidecars.playground import containerd, hostops, mountns, realnode
from csi_sidecars.playground.controlplane import ControlPlane, remove_stale_work_dirs
from csi_sidecars.playground.process import poll_until
from tests.e2e.real_node_support import busybox_pod, require_real_nodes, wait_pod_phase

REPO = Path(__file__).resolve().parents[2]
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "net/ipv4/ip_forward")
HOST_PATHS = (
    "/var/lib/kubelet",
    "/etc/cni/net.d",
    "/var/log/containers",
    "/var/log/pods",
    "/opt/containerd",
    "/var/lib/containerd",
)

# Started in a child process that the test kills: a node with a pod using a provisioned volume.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from csi_sidecars.playground import objects
    from csi_sidecars.playground.controlplane import ControlPlane
    from tests.e2e.real_node_support import busybox_pod, claim_volume, wait_pod_phase

    async def main():
        cp = ControlPlane(kubelet=True)
        await cp.start()
        driver = await cp.start_driver("node-1", attach=False)
        await cp.start_registrar(driver)
        await cp.wait_csinode_driver("node-1")
        await cp.start_sidecar("provisioner", driver=driver)
        api = cp.admin
        await api.create("/apis/storage.k8s.io/v1/storageclasses",
                         objects.storage_class("sc", cp.driver_name))
        await api.create("/api/v1/namespaces/default/persistentvolumeclaims",
                         objects.pvc("data", "sc"))
        pod = busybox_pod("app", "sleep 3600", volumes=[claim_volume("data")],
                          mounts=[{"name": "data", "mountPath": "/data"}])
        await api.create("/api/v1/namespaces/default/pods", pod)
        await wait_pod_phase(api, "default", "app")
        print("READY", cp.work_dir, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def _sysctls() -> dict[str, str]:
    return {k: Path("/proc/sys", k).read_text().strip() for k in SYSCTLS}


def _records(work_dir: Path) -> list[realnode.NodeRecord]:
    found = [realnode.NodeRecord.load(p) for p in (work_dir / "nodes").glob("*/node.json")]
    return [r for r in found if r is not None]


def _cni_cache_entries(paths: containerd.ContainerdPaths, ids: set[str]) -> list[Path]:
    cache = containerd.cni_cache(paths)
    if not cache.is_dir():
        return []
    return [p for p in cache.iterdir() if any(f"-{i}-" in p.name for i in ids)]


def _hard_coded_paths() -> list[bool]:
    """Whether the host has each of the directories containerd 1.6 hard-codes."""
    return [top.is_dir() for top in mountns.HARD_CODED]


def _on_the_host(paths: containerd.ContainerdPaths, ids: set[str]) -> list[Path]:
    """Shim sockets and libcni cache entries of this node's pods in the host's own
    /run/containerd/s and /var/lib/cni (other testbeds may use them; ours must not)."""
    found = []
    for task_id in ids:
        digest = containerd.shim_socket(paths, task_id).name
        found += [p for p in [mountns.SHIM_SOCKET_DIR / digest] if p.exists()]
    cache = containerd.CNI_CACHE
    if cache.is_dir():
        found += [p for p in cache.iterdir() if any(f"-{i}-" in p.name for i in ids)]
    return found


def _cgroup_dirs(name: str) -> list[Path]:
    return [Path(mp) / name for mp, _ in hostops.cgroup_mounts() if (Path(mp) / name).exists()]


async def test_a_clean_stop_leaves_nothing_on_the_host() -> None:
    require_real_nodes()
    sysctls = _sysctls()
    absent = [p for p in HOST_PATHS if not Path(p).exists()]
    hard_coded = _hard_coded_paths()
    cp = ControlPlane(kubelet=True)
    await cp.start()
    try:
        work_dir = cp.work_dir
        records = _records(work_dir)
        assert [r.node for r in records] == ["node-1"]
        pod = busybox_pod("bridged", "sleep 3600")
        await cp.admin.create("/api/v1/namespaces/default/pods", pod)
        running = await wait_pod_phase(cp.admin, "default", "bridged")
        # The pod is on the node's own bridge and subnet, its containers in the node's cgroup.
        assert running["status"]["podIP"].startswith(records[0].subnet.rsplit(".", 1)[0])
        assert hostops.link_exists(records[0].bridge)
        assert _cgroup_dirs(records[0].cgroup_root)
        assert hostops.mounts_under(work_dir)
        assert hostops.processes_using(work_dir)
        # The shims' sockets and libcni's cache are below the node directory, not on the host.
        paths = realnode.containerd_paths(work_dir / "nodes" / "node-1")
        ids = containerd.runtime_ids(paths)
        assert any(containerd.shim_socket(paths, i).exists() for i in ids)
        assert _cni_cache_entries(paths, ids)
        assert all(work_dir in containerd.shim_socket(paths, i).parents for i in ids)
        assert not _on_the_host(paths, ids)
    finally:
        await cp.stop()
    assert not work_dir.exists()
    assert not hostops.mounts_under(work_dir)
    assert not hostops.processes_using(work_dir)
    assert not hostops.link_exists(records[0].bridge)
    assert not _cgroup_dirs(records[0].cgroup_root)
    assert _hard_coded_paths() == hard_coded
    assert _sysctls() == sysctls
    assert [p for p in HOST_PATHS if not Path(p).exists()] == absent


async def test_the_next_testbed_sweeps_what_a_killed_one_left(tmp_path: Path) -> None:
    require_real_nodes()
    hard_coded = _hard_coded_paths()
    log = (tmp_path / "child.log").open("wb")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 180)
        assert line.startswith(b"READY "), (tmp_path / "child.log").read_text()[-3000:]
        work_dir = Path(line.split()[1].decode())
        records = _records(work_dir)
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        log.close()

    # kubelet, containerd and the driver died with their parent; shims, containers, mounts,
    # the cgroup and the bridge did not.
    async def orphans_settled() -> list[int] | None:
        pids = hostops.processes_using(work_dir)
        return pids or None

    assert await poll_until(orphans_settled, 10, "orphaned shims")
    assert hostops.mounts_under(work_dir)
    assert hostops.link_exists(records[0].bridge)
    assert _cgroup_dirs(records[0].cgroup_root)
    # The shims keep containerd's mount namespace: its shim sockets and libcni cache entries
    # are below the node directory, and the host's own directories have none of them.
    paths = realnode.containerd_paths(work_dir / "nodes" / "node-1")
    ids = containerd.runtime_ids(paths)
    assert any(containerd.shim_socket(paths, i).exists() for i in ids)
    assert _cni_cache_entries(paths, ids)
    assert not _on_the_host(paths, ids)

    removed = remove_stale_work_dirs()
    assert work_dir in removed
    assert not work_dir.exists()
    assert not hostops.mounts_under(work_dir)
    assert not hostops.processes_using(work_dir)
    assert not hostops.link_exists(records[0].bridge)
    assert not _cgroup_dirs(records[0].cgroup_root)
    assert _hard_coded_paths() == hard_coded
