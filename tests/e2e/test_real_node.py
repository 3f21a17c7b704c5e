"""e2e on real nodes: kubelet registers our registrar's driver and mounts volumes through it.

The playground driver runs with real mounts and node-driver-registrar next to it as host
processes, exactly where a node DaemonSet would put them (the driver socket in kubelet's
``plugins/<driver>/``, the registration socket in ``plugins_registry``); kubelet, containerd and
busybox pods are real.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from csi_sidecars.playground import hostops, objects
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, poll_until
from tests.e2e.conftest import require
from tests.e2e.real_node_support import (
    NODE_CALLS,
    SC,
    busybox_pod,
    claim_volume,
    delete_pod,
    node_plugin,
    unique,
    wait_calls,
    wait_pod_phase,
)

CSINODE = "/apis/storage.k8s.io/v1/csinodes/node-1"
VA = "/apis/storage.k8s.io/v1/volumeattachments"


async def test_registrar_registers_with_kubelet_and_again_after_a_restart(
    real_control_plane: ControlPlane,
) -> None:
    cp = real_control_plane
    async with node_plugin(cp) as plugin:
        # The socket in plugins_registry was picked up: kubelet wrote the CSINode entry.
        csinode = await cp.admin.get(CSINODE)
        entry = next(d for d in csinode["spec"]["drivers"] if d["name"] == cp.driver_name)
        assert entry["nodeID"] == "node-1"
        assert entry["topologyKeys"] == [objects.TOPOLOGY_KEY]
        assert csinode["metadata"]["ownerReferences"][0]["kind"] == "Node"
        node = await cp.admin.get("/api/v1/nodes/node-1")
        assert node["metadata"]["labels"][objects.TOPOLOGY_KEY] == "node-1"

        # kubelet confirmed with NotifyRegistrationStatus(registered=true).
        async def confirmed() -> bool:
            status, _ = await plugin.registration_health()
            return status == 200

        await poll_until(confirmed, 30, "the registrar to report kubelet's confirmation")

        # The registrar removes its socket on SIGTERM; kubelet deregisters the driver.
        await plugin.registrar.stop(timeout=10)

        def unlisted(obj: dict[str, object]) -> bool:
            drivers = obj["spec"].get("drivers") or []  # type: ignore[attr-defined]
            return all(d["name"] != cp.driver_name for d in drivers)

        await cp.admin.wait_for(CSINODE, unlisted, 60, "kubelet to deregister the driver")

        await plugin.registrar.start()
        await cp.wait_csinode_driver("node-1")
        await poll_until(confirmed, 30, "the restarted registrar to be confirmed again")


async def test_a_claims_data_outlives_its_pods_and_node_calls_come_in_order(
    real_control_plane: ControlPlane, real_namespace: str
) -> None:
    cp, ns = real_control_plane, real_namespace
    api = cp.admin
    async with node_plugin(cp) as plugin:
        provisioner = await cp.start_sidecar("provisioner", driver=plugin.driver)
        try:
            sc = unique("rn-sc")
            await api.create(
                SC,
                objects.storage_class(sc, cp.driver_name, binding_mode="WaitForFirstConsumer"),
            )
            await api.create(
                f"/api/v1/namespaces/{ns}/persistentvolumeclaims", objects.pvc("data", sc, "1Mi")
            )
            payload = f"payload-{uuid.uuid4().hex}"
            pods = f"/api/v1/namespaces/{ns}/pods"
            writer = busybox_pod(
                "writer",
                f"echo {payload} > /data/file && sync && sleep 3600",
                volumes=[claim_volume("data")],
                mounts=[{"name": "data", "mountPath": "/data"}],
            )
            await api.create(pods, writer)
            running = await wait_pod_phase(api, ns, "writer")
            assert running["spec"]["nodeName"] == "node-1"

            # The volume is really mounted where kubelet asked, and the file is on it.
            published = (await wait_calls(plugin, "NodePublishVolume"))[0]
            assert hostops.mounts_under(Path(published["target_path"]))
            out = await cp.kubectl("exec", "-n", ns, "writer", "--", "cat", "/data/file")
            assert out.strip() == payload
            volume_id = published["volume_id"]
            assert plugin.driver.state_dir is not None
            stored = plugin.driver.state_dir / "volumes" / volume_id / "file"
            assert stored.read_text().strip() == payload

            # kubelet removes the Pod object first and tears its volumes down after.
            await delete_pod(api, ns, "writer")
            await wait_calls(plugin, "NodeUnpublishVolume", 1)
            reader = busybox_pod(
                "reader",
                "cat /data/file && sleep 3600",
                volumes=[claim_volume("data")],
                mounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
            )
            await api.create(pods, reader)
            await wait_pod_phase(api, ns, "reader")

            async def logged() -> str | None:
                text = await cp.kubectl("logs", "-n", ns, "reader")
                return text if text.strip() else None

            assert (await poll_until(logged, 30, "the reader's output")).strip() == payload

            await delete_pod(api, ns, "reader")
            await wait_calls(plugin, "NodeUnpublishVolume", 2)
            # With no pod left on the node, kubelet unstages; only then is the claim deleted
            # (without an attacher nothing else orders DeleteVolume after the unstage).
            await wait_calls(plugin, "NodeUnstageVolume", 1)
            pvc = await api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
            await api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
            await api.wait_deleted(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}", 60)
            await wait_calls(plugin, "DeleteVolume")

            calls = [
                c
                for c in plugin.calls(*NODE_CALLS, "DeleteVolume")
                if c.get("volume_id") == volume_id and c["code"] == "OK"
            ]
            order = [c["method"] for c in calls]
            # Two pods one after the other: the volume is staged before each publish (kubelet
            # may keep it staged in between or unstage and stage again), each publish is
            # undone before the next, and the last unstage comes before DeleteVolume.
            assert order.count("NodePublishVolume") == 2, order
            assert order.count("NodeUnpublishVolume") == 2, order
            assert order[-2:] == ["NodeUnstageVolume", "DeleteVolume"], order
            staged = False
            for i, method in enumerate(order[:-1]):
                if method == "NodeStageVolume":
                    assert not staged, order
                    staged = True
                elif method == "NodeUnstageVolume":
                    assert staged and order[i - 1] == "NodeUnpublishVolume", order
                    staged = False
                elif method == "NodePublishVolume":
                    assert staged and order[i + 1] == "NodeUnpublishVolume", order
            # Nothing of this claim's volume stays mounted in any pod's directory (other tests'
            # pods on the shared node may still hold their own volumes).
            pv_dir = f"/{Path(published['target_path']).parent.name}/"
            pods_dir = cp.real_nodes["node-1"].paths.root / "pods"
            left = [m for m in hostops.mounts_under(pods_dir) if pv_dir in f"{m.mount_point}/"]
            assert not left, left
        finally:
            await provisioner.stop(timeout=10)


async def test_kubelet_waits_for_our_attacher_before_staging(
    real_control_plane: ControlPlane, real_namespace: str
) -> None:
    cp, ns = real_control_plane, real_namespace
    api = cp.admin
    async with node_plugin(cp, attach=True) as plugin:
        provisioner = await cp.start_sidecar("provisioner", driver=plugin.driver)
        attacher: ManagedProcess | None = None
        try:
            sc = unique("rn-attach")
            await api.create(SC, objects.storage_class(sc, cp.driver_name))
            await api.create(
                f"/api/v1/namespaces/{ns}/persistentvolumeclaims", objects.pvc("data", sc, "1Mi")
            )
            pvc = await api.wait_for(
                f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data",
                lambda o: o.get("status", {}).get("phase") == "Bound",
                60,
                "the claim to be bound",
            )
            pv_name = pvc["spec"]["volumeName"]
            pod = busybox_pod(
                "app",
                "echo attached > /data/file && sleep 3600",
                volumes=[claim_volume("data")],
                mounts=[{"name": "data", "mountPath": "/data"}],
            )
            await api.create(f"/api/v1/namespaces/{ns}/pods", pod)

            # No attacher yet: the attach/detach controller made a VolumeAttachment that nobody
            # attaches, and kubelet has not staged (it waits for volumesAttached in the Node).
            async def pending_attachment() -> dict[str, Any] | None:
                listed = await api.get(VA)
                mine = [
                    va
                    for va in listed["items"]
                    if va["spec"]["source"].get("persistentVolumeName") == pv_name
                ]
                return mine[0] if mine else None

            va = await poll_until(pending_attachment, 60, "a VolumeAttachment for the volume")
            assert not va.get("status", {}).get("attached")
            assert va["spec"]["nodeName"] == "node-1"
            assert plugin.calls("NodeStageVolume") == []
            current = await api.get(f"/api/v1/namespaces/{ns}/pods/app")
            assert current["status"].get("phase") == "Pending"

            attacher = await cp.start_sidecar("attacher", driver=plugin.driver)
            await wait_pod_phase(api, ns, "app")
            attached = await api.get(f"{VA}/{va['metadata']['name']}")
            assert attached["status"]["attached"] is True
            node = await api.get("/api/v1/nodes/node-1")
            in_use = [v["name"] for v in node["status"].get("volumesAttached") or []]
            pv = await api.get(f"/api/v1/persistentvolumes/{pv_name}")
            assert f"kubernetes.io/csi/{cp.driver_name}^{pv['spec']['csi']['volumeHandle']}" in (
                in_use
            )

            methods = [c["method"] for c in plugin.calls() if c["code"] == "OK"]
            assert methods.index("ControllerPublishVolume") < methods.index("NodeStageVolume")
            # The driver refuses NodeStage of an unattached volume: kubelet never tried one.
            assert all(c["code"] == "OK" for c in plugin.calls("NodeStageVolume"))

            await delete_pod(api, ns, "app")
            await wait_calls(plugin, "NodeUnstageVolume")
            await api.wait_deleted(f"{VA}/{va['metadata']['name']}", 120)
            methods = [c["method"] for c in plugin.calls() if c["code"] == "OK"]
            assert methods.index("NodeUnstageVolume") < methods.index("ControllerUnpublishVolume")
            await api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
            await api.wait_deleted(f"/api/v1/persistentvolumes/{pv_name}", 60)
        finally:
            if attacher is not None:
                await attacher.stop(timeout=10)
            await provisioner.stop(timeout=10)


async def test_a_csi_ephemeral_inline_volume_lives_and_dies_with_its_pod(
    real_control_plane: ControlPlane, real_namespace: str
) -> None:
    cp, ns = real_control_plane, real_namespace
    api = cp.admin
    async with node_plugin(cp) as plugin:
        volume = {"name": "scratch", "csi": {"driver": cp.driver_name, "volumeAttributes": {}}}
        pod = busybox_pod(
            "inline",
            "echo inline > /scratch/file && sleep 3600",
            volumes=[volume],
            mounts=[{"name": "scratch", "mountPath": "/scratch"}],
        )
        await api.create(f"/api/v1/namespaces/{ns}/pods", pod)
        await wait_pod_phase(api, ns, "inline")
        published = (await wait_calls(plugin, "NodePublishVolume"))[0]
        out = await cp.kubectl("exec", "-n", ns, "inline", "--", "cat", "/scratch/file")
        assert out.strip() == "inline"
        assert plugin.driver.state_dir is not None
        stored = plugin.driver.state_dir / "volumes" / published["volume_id"]
        assert (stored / "file").read_text().strip() == "inline"
        # No PV, no staging, no CreateVolume: the volume is the pod's.
        assert plugin.calls("NodeStageVolume", "CreateVolume") == []

        await delete_pod(api, ns, "inline")
        await wait_calls(plugin, "NodeUnpublishVolume")

        async def gone() -> bool:
            return not stored.exists()

        await poll_until(gone, 30, "the inline volume's data to be removed")
        assert not hostops.mounts_under(Path(published["target_path"]))


async def test_a_raw_block_volume_carries_bytes_between_pods(
    real_control_plane: ControlPlane, real_namespace: str
) -> None:
    cp, ns = real_control_plane, real_namespace
    api = cp.admin
    async with node_plugin(cp) as plugin:
        provisioner = await cp.start_sidecar("provisioner", driver=plugin.driver)
        try:
            sc = unique("rn-block")
            await api.create(SC, objects.storage_class(sc, cp.driver_name))
            claim = objects.pvc("raw", sc, "4Mi", volume_mode="Block")
            await api.create(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", claim)
            payload = uuid.uuid4().hex
            devices = [{"name": "data", "devicePath": "/dev/xvda"}]
            writer = busybox_pod(
                "writer",
                f"printf {payload} | dd of=/dev/xvda bs=512 conv=sync,fsync && sleep 3600",
                volumes=[claim_volume("raw")],
                devices=devices,
            )
            await api.create(f"/api/v1/namespaces/{ns}/pods", writer)
            await wait_pod_phase(api, ns, "writer")
            out = await cp.kubectl(
                "exec", "-n", ns, "writer", "--", "sh", "-c", "test -b /dev/xvda && echo block"
            )
            assert out.strip() == "block"
            await delete_pod(api, ns, "writer")
            await wait_calls(plugin, "NodeUnpublishVolume")

            reader = busybox_pod(
                "reader",
                # echo: the runtime logs whole lines only.
                f"dd if=/dev/xvda bs={len(payload)} count=1 2>/dev/null && echo && sleep 3600",
                volumes=[claim_volume("raw")],
                devices=devices,
            )
            await api.create(f"/api/v1/namespaces/{ns}/pods", reader)
            await wait_pod_phase(api, ns, "reader")

            async def logged() -> str | None:
                text = await cp.kubectl("logs", "-n", ns, "reader")
                return text if text.strip() else None

            assert (await poll_until(logged, 30, "the reader's output")).strip() == payload
            await delete_pod(api, ns, "reader")
            await wait_calls(plugin, "NodeUnpublishVolume", 2)
            await wait_calls(plugin, "NodeUnstageVolume")
            await api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/raw")
        finally:
            await provisioner.stop(timeout=10)


async def test_expansion_ends_with_kubelet_calling_node_expand_volume(
    real_control_plane: ControlPlane, real_namespace: str
) -> None:
    cp, ns = real_control_plane, real_namespace
    api = cp.admin
    claim_path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data"
    async with node_plugin(cp) as plugin:
        provisioner = await cp.start_sidecar("provisioner", driver=plugin.driver)
        resizer = await cp.start_sidecar("resizer", driver=plugin.driver)
        try:
            sc = unique("rn-grow")
            await api.create(SC, objects.storage_class(sc, cp.driver_name, allow_expansion=True))
            await api.create(
                f"/api/v1/namespaces/{ns}/persistentvolumeclaims", objects.pvc("data", sc, "1Mi")
            )
            pod = busybox_pod(
                "app",
                "sleep 3600",
                volumes=[claim_volume("data")],
                mounts=[{"name": "data", "mountPath": "/data"}],
            )
            await api.create(f"/api/v1/namespaces/{ns}/pods", pod)
            await wait_pod_phase(api, ns, "app")
            published = (await wait_calls(plugin, "NodePublishVolume"))[0]

            await api.patch(claim_path, {"spec": {"resources": {"requests": {"storage": "2Mi"}}}})

            # The resizer grows the volume in the controller; kubelet finishes on the node
            # (the volume is in use), then reports the new size in the claim's status.
            def grown(obj: dict[str, Any]) -> bool:
                status = obj.get("status", {})
                return status.get("capacity", {}).get("storage") == "2Mi" and not any(
                    c["type"] in ("Resizing", "FileSystemResizePending")
                    for c in status.get("conditions") or []
                )

            await api.wait_for(claim_path, grown, 120, "the claim to report 2Mi")
            expanded = await wait_calls(plugin, "NodeExpandVolume")
            assert expanded[0]["volume_id"] == published["volume_id"]
            methods = [c["method"] for c in plugin.calls() if c["code"] == "OK"]
            assert methods.index("ControllerExpandVolume") < methods.index("NodeExpandVolume")

            await delete_pod(api, ns, "app")
            await wait_calls(plugin, "NodeUnstageVolume")
            await api.delete(claim_path)
        finally:
            await resizer.stop(timeout=10)
            await provisioner.stop(timeout=10)


async def test_a_snapshot_carries_the_data_into_a_restored_claim(
    real_control_plane: ControlPlane, real_namespace: str
) -> None:
    cp, ns = real_control_plane, real_namespace
    api = cp.admin
    snapshots = f"/apis/snapshot.storage.k8s.io/v1/namespaces/{ns}/volumesnapshots"
    # csi-sidecars provisioner does not restore claims from snapshots yet ("not supported yet"
    # in its dataSource handling): the Go one provisions here, our snapshot-controller and
    # snapshotter cut the snapshot, the driver and kubelet carry the data.
    require("csi-provisioner")
    async with node_plugin(cp) as plugin:
        started = [
            await cp.start_sidecar("provisioner", driver=plugin.driver, implementation="go"),
            await cp.start_sidecar("snapshot-controller"),
            await cp.start_sidecar("snapshotter", driver=plugin.driver),
        ]
        try:
            sc = unique("rn-snap")
            await api.create(SC, objects.storage_class(sc, cp.driver_name))
            vsc = unique("rn-snapclass")
            await api.create(
                "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses",
                {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshotClass",
                    "metadata": {"name": vsc},
                    "driver": cp.driver_name,
                    "deletionPolicy": "Delete",
                },
            )
            claims = f"/api/v1/namespaces/{ns}/persistentvolumeclaims"
            await api.create(claims, objects.pvc("origin", sc, "1Mi"))
            payload = f"snap-{uuid.uuid4().hex}"
            writer = busybox_pod(
                "writer",
                f"echo {payload} > /data/file && sync && sleep 3600",
                volumes=[claim_volume("origin")],
                mounts=[{"name": "data", "mountPath": "/data"}],
            )
            await api.create(f"/api/v1/namespaces/{ns}/pods", writer)
            await wait_pod_phase(api, ns, "writer")
            out = await cp.kubectl("exec", "-n", ns, "writer", "--", "cat", "/data/file")
            assert out.strip() == payload

            await api.create(
                snapshots,
                {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshot",
                    "metadata": {"name": "snap"},
                    "spec": {
                        "volumeSnapshotClassName": vsc,
                        "source": {"persistentVolumeClaimName": "origin"},
                    },
                },
            )
            await api.wait_for(
                f"{snapshots}/snap",
                lambda o: bool(o.get("status", {}).get("readyToUse")),
                90,
                "the snapshot to be ready",
            )
            # Written after the snapshot: must not show up in the restored claim.
            await cp.kubectl(
                "exec", "-n", ns, "writer", "--", "sh", "-c", "echo later > /data/later"
            )
            restored = objects.pvc("restored", sc, "1Mi")
            restored["spec"]["dataSource"] = {
                "apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot",
                "name": "snap",
            }
            await api.create(claims, restored)
            reader = busybox_pod(
                "reader",
                "cat /data/file; ls /data; sleep 3600",
                volumes=[claim_volume("restored")],
                mounts=[{"name": "data", "mountPath": "/data"}],
            )
            await api.create(f"/api/v1/namespaces/{ns}/pods", reader)
            await wait_pod_phase(api, ns, "reader")
            out = await cp.kubectl("exec", "-n", ns, "reader", "--", "cat", "/data/file")
            assert out.strip() == payload
            listing = await cp.kubectl("exec", "-n", ns, "reader", "--", "ls", "/data")
            assert listing.split() == ["file"]

            for name in ("reader", "writer"):
                await delete_pod(api, ns, name)
            await wait_calls(plugin, "NodeUnstageVolume", 2)
            await api.delete(f"{snapshots}/snap")
            for name in ("restored", "origin"):
                await api.delete(f"{claims}/{name}")
        finally:
            for proc in started:
                await proc.stop(timeout=10)
