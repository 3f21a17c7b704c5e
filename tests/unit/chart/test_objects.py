"""Images, the CSIDriver, the snapshot CRDs, StorageClasses, Services and ServiceMonitors."""

from __future__ import annotations

import pytest

from csi_sidecars import __version__, crds
from tests.unit.chart.conftest import Helm, load_script

#: The chart's default image name (pyproject.toml, copied into values.yaml).
IMAGE = load_script("sync-chart-files").project_metadata()[0]
SNAPSHOTS_ON = {"controller": {"snapshotter": {"enabled": True}}}
DIGEST = "sha256:" + "ab" * 32


def _images(helm: Helm, values: dict[str, object]) -> set[str]:
    out = helm.template(values)
    return {
        c["image"]
        for d in out.all("Deployment") + out.all("DaemonSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_one_image_for_every_role_tagged_with_the_app_version(helm: Helm) -> None:
    assert _images(helm, {"snapshotController": {"enabled": True}}) == {
        f"{IMAGE}:{__version__}",
        "registry.example.com/example/driver:v1",
    }


def test_global_registry_keeps_the_image_path(helm: Helm) -> None:
    """trident #1147: a mirror override must not strip the repository path."""
    images = _images(helm, {"global": {"imageRegistry": "mirror.example.com/proxy/"}})
    assert images == {
        f"mirror.example.com/proxy/{IMAGE.partition('/')[2]}:{__version__}",
        "mirror.example.com/proxy/example/driver:v1",
    }


def test_digest_wins_over_tag_and_pull_settings_apply(helm: Helm) -> None:
    out = helm.template(
        {
            "image": {"tag": "9.9", "digest": DIGEST, "pullPolicy": "Always"},
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    provisioner = out.container("controller", "csi-provisioner")
    assert provisioner["image"] == f"{IMAGE}@{DIGEST}"
    assert provisioner["imagePullPolicy"] == "Always"
    for workload in out.all("Deployment") + out.all("DaemonSet"):
        assert workload["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_registrar_mode_renders_flags_and_no_object(helm: Helm) -> None:
    out = helm.template(
        {
            "csiDriver": {
                "attachRequired": False,
                "podInfoOnMount": True,
                "volumeLifecycleModes": ["Persistent", "Ephemeral"],
                "fsGroupPolicy": "File",
                "storageCapacity": True,
                "seLinuxMount": False,
                "tokenRequests": [{"audience": "a", "expirationSeconds": 3600}, {"audience": "b"}],
                "labels": {"team": "storage"},
            }
        }
    )
    assert not out.all("CSIDriver")
    args = out.container("controller", "cluster-driver-registrar")["args"]
    for flag in (
        "--attach-required=false",
        "--pod-info-mount=true",
        "--volume-lifecycle-modes=Persistent,Ephemeral",
        "--fs-group-policy=File",
        "--storage-capacity=true",
        "--selinux-mount=false",
        "--token-request=a,3600",
        "--token-request=b",
        "--labels=team=storage",
        "--allow-recreate",
        "--owner-cluster-role=csi-csi-sidecars-cluster-driver-registrar",
    ):
        assert flag in args
    # unset fields are not managed
    assert not any(a.startswith("--requires-republish") for a in args)


def test_registrar_derives_attach_required_unless_set(helm: Helm) -> None:
    args = helm.template({}).container("controller", "cluster-driver-registrar")["args"]
    assert not any(a.startswith("--attach-required") for a in args)
    assert not any(a.startswith("--volume-lifecycle-modes") for a in args)


def test_template_mode_renders_the_object(helm: Helm) -> None:
    out = helm.template(
        {
            "csiDriver": {
                "mode": "template",
                "attachRequired": False,
                "volumeLifecycleModes": ["Ephemeral"],
                "tokenRequests": [{"audience": "a", "expirationSeconds": 600}],
            }
        }
    )
    assert "cluster-driver-registrar" not in out.containers("controller")
    assert not [r for r in out.all("ClusterRole") if "registrar" in r["metadata"]["name"]]
    driver = out.get("CSIDriver", "csi.example.com")
    assert driver["spec"] == {
        "attachRequired": False,
        "podInfoOnMount": False,
        "volumeLifecycleModes": ["Ephemeral"],
        "tokenRequests": [{"audience": "a", "expirationSeconds": 600}],
    }


def test_mode_none_renders_neither(helm: Helm) -> None:
    out = helm.template({"csiDriver": {"mode": "none"}})
    assert not out.all("CSIDriver")
    assert "cluster-driver-registrar" not in out.containers("controller")


@pytest.mark.parametrize(
    "values",
    [SNAPSHOTS_ON, {"snapshotController": {"enabled": True}}],
    ids=["snapshotter", "snapshot-controller"],
)
def test_snapshot_crds_are_the_packages_and_kept(helm: Helm, values: dict[str, object]) -> None:
    rendered = helm.template(values).all("CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in rendered) == sorted(crds.SNAPSHOT_CRD_NAMES)
    for crd in rendered:
        ours = crds.load(crd["metadata"]["name"])
        assert crd["spec"] == ours["spec"]
        annotations = crd["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["csi-sidecars.io/snapshot-crds-version"] == "v8.6.0"
        for key, value in ours["metadata"]["annotations"].items():
            assert annotations[key] == value


def test_snapshot_crds_can_be_left_out(helm: Helm) -> None:
    out = helm.template({**SNAPSHOTS_ON, "snapshotCRDs": {"install": False}})
    assert not out.all("CustomResourceDefinition")
    assert "csi-snapshotter" in out.containers("controller")


def test_storage_classes(helm: Helm) -> None:
    out = helm.template(
        {
            "storageClasses": [
                {"name": "fast", "isDefault": True, "parameters": {"type": "ssd"}},
                {"name": "keep", "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"},
            ]
        }
    )
    fast = out.get("StorageClass", "fast")
    assert fast["provisioner"] == "csi.example.com"
    assert fast["parameters"] == {"type": "ssd"}
    assert fast["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    assert (fast["reclaimPolicy"], fast["volumeBindingMode"]) == ("Delete", "WaitForFirstConsumer")
    keep = out.get("StorageClass", "keep")
    assert (keep["reclaimPolicy"], keep["volumeBindingMode"]) == ("Retain", "Immediate")
    assert "annotations" not in keep["metadata"]


def test_one_metrics_service_per_pod_with_every_role_port(helm: Helm) -> None:
    out = helm.template(
        {
            "controller": {"resizer": {"enabled": True}, "attacher": {"enabled": False}},
            "snapshotController": {"enabled": True},
        }
    )
    services = {s["metadata"]["name"]: s for s in out.all("Service")}
    assert set(services) == {
        "csi-csi-sidecars-controller-metrics",
        "csi-csi-sidecars-node-metrics",
        "csi-csi-sidecars-snapshot-controller-metrics",
    }
    ports = {
        p["name"]: p["port"]
        for p in services["csi-csi-sidecars-controller-metrics"]["spec"]["ports"]
    }
    assert ports == {"provisioner": 8080, "resizer": 8083, "healthz": 9808, "registrar": 8084}
    deployment = out.get("Deployment", "csi-csi-sidecars-controller")
    selector = services["csi-csi-sidecars-controller-metrics"]["spec"]["selector"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    named = {
        p["name"]
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    assert set(ports) <= named


def test_service_monitors_only_with_their_api(helm: Helm) -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": True, "interval": "30s"}}}
    assert not helm.template(values).all("ServiceMonitor")
    with_api = helm.template(values, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")
    monitors = {m["metadata"]["name"]: m for m in with_api.all("ServiceMonitor")}
    assert set(monitors) == {"csi-csi-sidecars-controller", "csi-csi-sidecars-node"}
    endpoints = monitors["csi-csi-sidecars-node"]["spec"]["endpoints"]
    assert endpoints == [{"port": "healthz", "path": "/metrics", "interval": "30s"}]
    assert not helm.template({}, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor").all(
        "ServiceMonitor"
    )


def test_one_service_account_per_workload(helm: Helm) -> None:
    out = helm.template({"snapshotController": {"enabled": True}})
    accounts = {a["metadata"]["name"] for a in out.all("ServiceAccount")}
    assert accounts == {
        "csi-csi-sidecars-controller",
        "csi-csi-sidecars-node",
        "csi-csi-sidecars-snapshot-controller",
    }
    used = {
        d["spec"]["template"]["spec"]["serviceAccountName"]
        for d in out.all("Deployment") + out.all("DaemonSet")
    }
    assert used == accounts
    node = out.get("ServiceAccount", "csi-csi-sidecars-node")
    assert node["automountServiceAccountToken"] is False


def test_existing_service_account(helm: Helm) -> None:
    out = helm.template({"controller": {"serviceAccount": {"create": False, "name": "mine"}}})
    assert out.get("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    subjects = {s["name"] for b in out.all("ClusterRoleBinding") for s in b["subjects"]}
    assert subjects == {"mine"}
