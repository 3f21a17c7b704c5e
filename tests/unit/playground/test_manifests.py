"""manifests: the node DaemonSet and controller Deployment of the suite in pods."""

from __future__ import annotations

from typing import Any

from csi_sidecars.playground import manifests

SPEC = manifests.SuiteSpec(
    namespace="ns",
    image="localhost/csi-sidecars:1",
    driver_name="hostpath.csi.k8s.io",
    kubelet_root="/tb/nodes/node-1/kubelet",
    state_dir="/tb/state",
    faults_dir="/tb/faults",
    api_port=6443,
    liveness_port=19808,
    registrar_port=19809,
)


def _containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}


def test_the_node_plugin_mounts_kubelets_directories_bidirectionally() -> None:
    ds = manifests.node_daemonset(SPEC)
    driver = _containers(ds)["csi-driver"]
    assert driver["securityContext"]["privileged"] is True
    propagated = {m["mountPath"]: m.get("mountPropagation") for m in driver["volumeMounts"]}
    assert propagated["/tb/nodes/node-1/kubelet/pods"] == "Bidirectional"
    assert propagated["/tb/nodes/node-1/kubelet/plugins"] == "Bidirectional"
    assert "--mount-volumes" in driver["args"]
    assert driver["livenessProbe"]["httpGet"]["port"] == 19808
    volumes = {v["name"]: v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert volumes["socket-dir"] == "/tb/nodes/node-1/kubelet/plugins/hostpath.csi.k8s.io"
    assert volumes["registration-dir"] == "/tb/nodes/node-1/kubelet/plugins_registry"


def test_the_registrar_registers_the_drivers_host_socket() -> None:
    registrar = _containers(manifests.node_daemonset(SPEC))["node-driver-registrar"]
    assert registrar["args"][0] == "node-driver-registrar"
    assert (
        "--kubelet-registration-path=/tb/nodes/node-1/kubelet/plugins/hostpath.csi.k8s.io/csi.sock"
        in registrar["args"]
    )
    assert "--plugin-registration-path=/registration" in registrar["args"]
    assert registrar["readinessProbe"]["httpGet"]["path"] == "/healthz/registration"


def test_controller_sidecars_reach_the_api_with_their_service_account() -> None:
    deploy = manifests.controller_deployment(SPEC)
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "csi-controller"
    assert pod["hostNetwork"] is True
    containers = _containers(deploy)
    assert set(containers) == {"provisioner", "attacher"}
    env = {e["name"]: e.get("value") for e in containers["provisioner"]["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert all(c["image"] == SPEC.image for c in containers.values())


def test_rbac_binds_the_roles_to_the_service_account() -> None:
    objs = manifests.rbac_objects(SPEC)
    subjects = {s["name"] for o in objs if o["kind"].endswith("Binding") for s in o["subjects"]}
    assert subjects == {"system:serviceaccount:ns:csi-controller"}
    roles = {o["metadata"]["name"] for o in objs if o["kind"] == "ClusterRole"}
    assert "external-provisioner-runner" in roles and "external-attacher-runner" in roles
    kinds = [o["kind"] for o in manifests.suite_objects(SPEC)]
    assert kinds.index("ServiceAccount") < kinds.index("DaemonSet") < kinds.index("Deployment")


def test_pods_resolve_as_the_host_because_the_testbed_has_no_cluster_dns() -> None:
    # ClusterFirst(WithHostNet) without kubelet clusterDNS makes kubelet emit a MissingClusterDNS
    # Warning at every sync, which exhausts the pod's event budget (its probe failures vanish).
    for obj in (manifests.node_daemonset(SPEC), manifests.controller_deployment(SPEC)):
        assert obj["spec"]["template"]["spec"]["dnsPolicy"] == "Default"


def test_probes_of_the_node_plugin_fail_at_most_every_few_seconds() -> None:
    # Each failure is a Warning event; a 1 s period during a slow start used up the budget.
    containers = _containers(manifests.node_daemonset(SPEC))
    startup = containers["csi-driver"]["startupProbe"]
    assert startup["periodSeconds"] >= 3
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert containers["node-driver-registrar"]["readinessProbe"]["periodSeconds"] >= 3
