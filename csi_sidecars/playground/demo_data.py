"""The data step of the playground tour: on a real node, a pod writes and another reads back.

With real nodes (``playground demo --kubelet``, the default where kubelet and containerd are
installed) kubelet mounts demo-pvc through the driver for a busybox pod that writes a file; the
pod is deleted and a second pod on the same claim prints the file. The step then shows the node
calls the driver received, in order, from its call log. On API-only Nodes no pod runs, and the
step says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csi_sidecars.playground import images
from csi_sidecars.playground.driver.server import read_call_log
from csi_sidecars.playground.process import poll_until

if TYPE_CHECKING:
    from csi_sidecars.playground.demo import Tour

NODE_CALLS = (
    "NodeStageVolume",
    "NodePublishVolume",
    "NodeExpandVolume",
    "NodeUnpublishVolume",
    "NodeUnstageVolume",
)


def busybox_pod(name: str, claim: str, command: str) -> dict[str, Any]:
    """A busybox pod running ``sh -c command`` with ``claim`` at /data."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "app",
                    "image": images.busybox_image_name(),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", command],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


async def data_step(tour: Tour, namespace: str, claim: str) -> None:
    """Write to ``claim`` from one pod and read it back from another (real nodes only)."""
    tour.heading(f"Data on a real node: a pod writes to {claim}, a second pod reads it back")
    cp = tour.cp
    if not cp.real_nodes:
        tour.echo("no pod runs on API-only Nodes: start the playground with --kubelet for this")
        return
    await tour.ensure_role("attacher")
    api = cp.admin
    pods = f"/api/v1/namespaces/{namespace}/pods"
    logs = [d.call_log for d in cp.drivers if d.call_log is not None]
    before = {log: len(read_call_log(log)) for log in logs}
    writer = busybox_pod(
        "demo-writer",
        claim,
        'echo "hello from demo-writer on $(hostname), $(date -u)" > /data/hello.txt && sleep 3600',
    )
    await api.create(pods, writer)
    await api.wait_for(
        f"{pods}/demo-writer",
        lambda o: o.get("status", {}).get("phase") == "Running",
        120,
        "demo-writer to be Running",
    )
    await tour.show("get", "pod", "demo-writer", "-n", namespace, "-o", "wide")
    await tour.show("exec", "demo-writer", "-n", namespace, "--", "cat", "/data/hello.txt")
    await api.delete(f"{pods}/demo-writer")
    await api.wait_deleted(f"{pods}/demo-writer", timeout=120)
    reader = busybox_pod("demo-reader", claim, "cat /data/hello.txt && sleep 3600")
    await api.create(pods, reader)
    await api.wait_for(
        f"{pods}/demo-reader",
        lambda o: o.get("status", {}).get("phase") == "Running",
        120,
        "demo-reader to be Running",
    )

    async def logged() -> str | None:
        text = await cp.kubectl("logs", "demo-reader", "-n", namespace)
        return text if text.strip() else None

    await poll_until(logged, 30, "demo-reader's output")
    await tour.show("logs", "demo-reader", "-n", namespace)
    await api.delete(f"{pods}/demo-reader")
    await api.wait_deleted(f"{pods}/demo-reader", timeout=120)

    # kubelet tears volumes down after the Pod object is gone: wait for the last unpublish.
    async def unpublished() -> list[dict[str, Any]] | None:
        calls = [
            c
            for log in logs
            for c in read_call_log(log)[before[log] :]
            if c["method"] in NODE_CALLS and c["code"] == "OK"
        ]
        done = sum(c["method"] == "NodeUnpublishVolume" for c in calls)
        return calls if done >= 2 else None

    calls = await poll_until(unpublished, 120, "kubelet to unpublish the volume")
    tour.echo("node calls kubelet made to the driver, from its call log:")
    for call in calls:
        path = call.get("target_path") or call.get("staging_target_path", "")
        tour.echo(f"  {call['method']:<20} {path}")
