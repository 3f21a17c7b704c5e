"""The controller Deployment, the node DaemonSet and the snapshot controller, as rendered."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.conftest import Helm, Rendered

CONTROLLER_ROLES = {
    "provisioner": "csi-provisioner",
    "attacher": "csi-attacher",
    "snapshotter": "csi-snapshotter",
    "resizer": "csi-resizer",
    "livenessprobe": "liveness-probe",
}
ALL_ON = {
    "controller": {r: {"enabled": True} for r in CONTROLLER_ROLES},
    "snapshotController": {"enabled": True},
}


def _pod(rendered: Rendered, kind: str, suffix: str) -> dict[str, Any]:
    (workload,) = [d for d in rendered.all(kind) if d["metadata"]["name"].endswith(suffix)]
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _args(container: dict[str, Any]) -> list[str]:
    return list(container.get("args", []))


def test_controller_pod_defaults(helm: Helm) -> None:
    out = helm.template({})
    deployment = out.get("Deployment", "csi-csi-sidecars-controller")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term[0]["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == (deployment["spec"]["selector"]["matchLabels"])
    )
    names = [c["name"] for c in pod["containers"]]
    assert names == [
        "csi-driver",
        "csi-provisioner",
        "csi-attacher",
        "cluster-driver-registrar",
        "liveness-probe",
    ]
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, container["name"]
        assert ctx["allowPrivilegeEscalation"] is False, container["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert not ctx.get("privileged"), container["name"]
    pdb = out.get("PodDisruptionBudget", "csi-csi-sidecars-controller")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }


def test_every_controller_role_leader_elects_and_serves_http(helm: Helm) -> None:
    out = helm.template(ALL_ON)
    ports = set()
    for name in [*CONTROLLER_ROLES.values(), "cluster-driver-registrar"]:
        container = out.container("controller", name)
        args = _args(container)
        endpoint = [a for a in args if a.startswith("--http-endpoint=:")]
        assert len(endpoint) == 1, name
        port = int(endpoint[0].rpartition(":")[2])
        assert container["ports"][0]["containerPort"] == port
        ports.add(port)
        assert "--csi-address=/csi/csi.sock" in args
        if name != "liveness-probe":
            assert "--leader-election" in args, name
            assert "--leader-election-lease-duration=15s" in args, name
            probe = container["livenessProbe"]["httpGet"]
            assert probe["path"] == "/healthz/leader-election"
    assert len(ports) == 6
    sc = out.container("snapshot-controller", "snapshot-controller")
    assert sc["command"] == ["csi-sidecars", "snapshot-controller"]
    assert "--leader-election" in _args(sc)
    assert not any(a.startswith("--csi-address") for a in _args(sc))


def test_leader_election_off_needs_one_replica(helm: Helm) -> None:
    error = helm.error({"controller": {"leaderElection": False}})
    assert "controller.leaderElection=false with controller.replicas > 1" in error
    out = helm.template({"controller": {"leaderElection": False, "replicas": 1}})
    args = _args(out.container("controller", "csi-provisioner"))
    assert not any(a.startswith("--leader-election") for a in args)
    assert (
        out.container("controller", "csi-provisioner")["livenessProbe"]["httpGet"]["path"]
        == "/healthz"
    )
    assert not out.all("PodDisruptionBudget")


@pytest.mark.parametrize("role", sorted(CONTROLLER_ROLES))
def test_each_controller_role_is_switched_by_its_value(helm: Helm, role: str) -> None:
    on = helm.template({"controller": {role: {"enabled": True}}})
    off = helm.template({"controller": {role: {"enabled": False}}})
    assert CONTROLLER_ROLES[role] in on.containers("controller")
    assert CONTROLLER_ROLES[role] not in off.containers("controller")


def test_snapshotter_is_never_guessed_from_the_api(helm: Helm) -> None:
    """Off by default even when the cluster serves the snapshot API."""
    out = helm.template({}, "--api-versions", "snapshot.storage.k8s.io/v1/VolumeSnapshot")
    assert "csi-snapshotter" not in out.containers("controller")
    assert not out.all("CustomResourceDefinition")


def test_role_values_reach_their_container(helm: Helm) -> None:
    out = helm.template(
        {
            "controller": {
                "provisioner": {
                    "logLevel": 5,
                    "timeout": "2m",
                    "kubeApiQps": 50,
                    "kubeApiBurst": 200,
                    "workerThreads": 7,
                    "leaderElection": {"leaseDuration": "30s"},
                    "env": [{"name": "GRPC_TRACE", "value": "all"}],
                    "resources": {"limits": {"memory": "1Gi"}},
                    "securityContext": {"runAsUser": 1234},
                }
            }
        }
    )
    container = out.container("controller", "csi-provisioner")
    args = _args(container)
    for flag in (
        "--v=5",
        "--timeout=2m",
        "--kube-api-qps=50",
        "--kube-api-burst=200",
        "--worker-threads=7",
        "--leader-election-lease-duration=30s",
        "--leader-election-renew-deadline=10s",
    ):
        assert flag in args
    assert {"name": "GRPC_TRACE", "value": "all"} in container["env"]
    # helm merges maps: the default requests stay unless set to null
    assert container["resources"] == {
        "limits": {"memory": "1Gi"},
        "requests": {"cpu": "10m", "memory": "64Mi"},
    }
    # merged over the pod-wide container defaults, not replacing them
    assert container["securityContext"]["runAsUser"] == 1234
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_extra_args_come_after_the_chart_flags(helm: Helm) -> None:
    out = helm.template({"controller": {"provisioner": {"extraArgs": ["--timeout=5m"]}}})
    args = _args(out.container("controller", "csi-provisioner"))
    assert args[-1] == "--timeout=5m"
    assert args.index("--timeout=60s") < args.index("--timeout=5m")


def test_driver_container_in_both_pods(helm: Helm) -> None:
    out = helm.template(
        {
            "driver": {
                "command": ["/bin/driver"],
                "args": ["--endpoint=$(CSI_ENDPOINT)"],
                "env": [{"name": "A", "value": "1"}],
            },
            "controller": {"driver": {"args": ["--mode=controller"]}},
            "node": {"driver": {"env": [{"name": "B", "value": "2"}]}},
        }
    )
    ctrl = out.container("controller", "csi-driver")
    node = out.container("node", "csi-driver")
    assert ctrl["image"] == node["image"] == "registry.example.com/example/driver:v1"
    assert ctrl["command"] == node["command"] == ["/bin/driver"]
    assert ctrl["args"] == ["--mode=controller"]
    assert node["args"] == ["--endpoint=$(CSI_ENDPOINT)"]
    env = {e["name"]: e.get("value") for e in node["env"]}
    assert env["CSI_ENDPOINT"] == "unix:///csi/csi.sock"
    assert env["A"] == "1" and env["B"] == "2"
    assert "B" not in {e["name"] for e in ctrl["env"]}
    # the driver's liveness comes from livenessprobe's /healthz (which calls Probe)
    for container, pod in ((ctrl, "controller"), (node, "node")):
        probe_port = container["livenessProbe"]["httpGet"]["port"]
        liveness = out.container(pod, "liveness-probe")
        assert probe_port == liveness["ports"][0]["containerPort"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_controller_without_driver_uses_the_node_plugin_socket(helm: Helm) -> None:
    out = helm.template({"controller": {"driver": {"enabled": False}}})
    assert "csi-driver" not in out.containers("controller")
    pod = _pod(out, "Deployment", "controller")
    (socket,) = [v for v in pod["volumes"] if v["name"] == "socket-dir"]
    assert socket["hostPath"]["path"] == "/var/lib/kubelet/plugins/csi.example.com/"


@pytest.mark.parametrize(
    "kubelet",
    ["/var/lib/kubelet", "/var/snap/microk8s/common/var/lib/kubelet", "/var/lib/k0s/kubelet/"],
)
def test_node_pod_uses_the_kubelet_dir(helm: Helm, kubelet: str) -> None:
    out = helm.template({"kubeletDir": kubelet})
    base = kubelet.rstrip("/")
    pod = _pod(out, "DaemonSet", "node")
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {
        "socket-dir": f"{base}/plugins/csi.example.com/",
        "registration-dir": f"{base}/plugins_registry/",
        "mountpoint-dir": f"{base}/pods",
        "plugins-dir": f"{base}/plugins",
        "dev-dir": "/dev",
    }
    driver = out.container("node", "csi-driver")
    mounts = {m["name"]: m for m in driver["volumeMounts"]}
    assert mounts["mountpoint-dir"]["mountPath"] == f"{base}/pods"
    assert mounts["mountpoint-dir"]["mountPropagation"] == "Bidirectional"
    assert mounts["plugins-dir"]["mountPropagation"] == "Bidirectional"
    assert mounts["dev-dir"]["mountPath"] == "/dev"
    registrar = out.container("node", "node-driver-registrar")
    assert f"--kubelet-registration-path={base}/plugins/csi.example.com/csi.sock" in _args(
        registrar
    )
    assert "--plugin-registration-path=/registration" in _args(registrar)
    assert registrar["readinessProbe"]["httpGet"]["path"] == "/healthz/registration"
    assert registrar["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_only_the_node_driver_is_privileged(helm: Helm) -> None:
    out = helm.template({})
    pod = _pod(out, "DaemonSet", "node")
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["automountServiceAccountToken"] is False
    privileged = [c["name"] for c in pod["containers"] if c["securityContext"].get("privileged")]
    assert privileged == ["csi-driver"]
    for container in pod["containers"][1:]:
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert "mountPropagation" not in str(container.get("volumeMounts"))


def test_node_tolerations(helm: Helm) -> None:
    toleration = {"key": "storage", "operator": "Exists", "effect": "NoSchedule"}
    default = _pod(helm.template({"node": {"tolerations": [toleration]}}), "DaemonSet", "node")
    assert default["tolerations"] == [{"operator": "Exists"}, toleration]
    strict = _pod(
        helm.template({"node": {"tolerateAllTaints": False, "tolerations": [toleration]}}),
        "DaemonSet",
        "node",
    )
    assert strict["tolerations"] == [toleration]


@pytest.mark.parametrize(
    ("kind", "suffix", "key"),
    [
        ("Deployment", "sidecars-controller", "controller"),
        ("Deployment", "snapshot-controller", "snapshotController"),
        ("DaemonSet", "sidecars-node", "node"),
    ],
)
def test_host_network_is_opt_in(helm: Helm, kind: str, suffix: str, key: str) -> None:
    snapshots = {"snapshotController": {"enabled": True}}
    default = _pod(helm.template(snapshots), kind, suffix)
    assert "hostNetwork" not in default and "dnsPolicy" not in default
    values: dict[str, Any] = {**snapshots}
    values[key] = {**values.get(key, {}), "hostNetwork": True}
    host = _pod(helm.template(values), kind, suffix)
    assert (host["hostNetwork"], host["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")


def _probed(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        c
        for d in rendered.all("Deployment") + rendered.all("DaemonSet")
        for c in d["spec"]["template"]["spec"]["containers"]
        if "livenessProbe" in c
    ]


def test_every_liveness_probe_waits_for_a_startup_probe_on_its_endpoint(helm: Helm) -> None:
    """A slow start (Python on a busy node, a role waiting for its driver) is not a hang."""
    probed = _probed(helm.template(ALL_ON))
    assert {c["name"] for c in probed} >= {"csi-driver", "csi-provisioner", "snapshot-controller"}
    for c in probed:
        startup = c["startupProbe"]
        assert startup["httpGet"] == c["livenessProbe"]["httpGet"], c["name"]
        assert (startup["periodSeconds"], startup["failureThreshold"]) == (5, 60)
    tuned = _probed(helm.template({**ALL_ON, "startupProbe": {"failureThreshold": 12}}))
    assert {c["startupProbe"]["failureThreshold"] for c in tuned} == {12}
    off = _probed(helm.template({**ALL_ON, "startupProbe": {"enabled": False}}))
    assert off and not [c["name"] for c in off if "startupProbe" in c]


def test_topology_spread_and_affinity_pass_through(helm: Helm) -> None:
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
    pod = _pod(
        helm.template({"controller": {"topologySpreadConstraints": spread, "affinity": affinity}}),
        "Deployment",
        "controller",
    )
    assert pod["topologySpreadConstraints"] == spread
    assert pod["affinity"] == affinity


def test_node_only(helm: Helm) -> None:
    out = helm.template({"controller": {"enabled": False}, "csiDriver": {"mode": "template"}})
    assert not [d for d in out.all("Deployment")]
    assert not out.all("ClusterRole")
    assert {d["metadata"]["name"] for d in out.all("ServiceAccount")} == {"csi-csi-sidecars-node"}
    assert out.get("DaemonSet")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"driver": {"name": ""}}, "driver.name is required"),
        ({"driver": {"name": "Bad_Name"}}, 'driver.name "Bad_Name" must be a DNS subdomain'),
        ({"driver": {"image": {"repository": ""}}}, "driver.image.repository is required"),
        (
            {"controller": {"enabled": False}},
            "csiDriver.mode=registrar runs cluster-driver-registrar in the controller pods",
        ),
        (
            {"controller": {"attacher": {"httpPort": 8080}}},
            "controller.attacher.httpPort 8080 is already used by controller.provisioner",
        ),
        (
            {"node": {"livenessprobe": {"httpPort": 9809}}},
            "node.nodeDriverRegistrar.httpPort and node.livenessprobe.httpPort must differ",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_message(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    assert message in helm.error(values)
