"""Manifests that run the playground driver and csi-sidecars as pods on real nodes.

The layout is csi-driver-host-path's, split the way a production driver is: a node DaemonSet
with the driver (one process per node serving the Controller and Node services over the same
state, as hostpathplugin does), node-driver-registrar and livenessprobe, and a controller
Deployment with the controller sidecars. The controller pod reaches the driver through the
node's plugin directory (a hostPath), since the playground driver keeps its volumes on the node.

Every pod uses the host network: the testbed's API server listens on 127.0.0.1 only, so in-cluster
clients are pointed there (``KUBERNETES_SERVICE_HOST``/``PORT``) and authenticate with their
ServiceAccount's projected token. The containers run as root: the driver mounts (privileged,
Bidirectional propagation of kubelet's pods and plugins directories), the registrar writes into
kubelet's root-owned ``plugins_registry``, and the sidecars dial the driver's root-owned socket.
Pure builders: :mod:`.podsuite` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.playground import rbac

LABEL = "app.kubernetes.io/name"
SOCKET_DIR = "/csi"
STATE_DIR = "/csi-data-dir"
FAULTS_DIR = "/csi-faults"
#: Host-network pods on a testbed without cluster DNS resolve as the host does.
DNS_POLICY = "Default"
#: The sidecar identity (RBAC file) of each controller role.
CONTROLLER_IDENTITIES = {
    "provisioner": "csi-provisioner",
    "attacher": "csi-attacher",
    "resizer": "csi-resizer",
    "snapshotter": "csi-snapshotter",
}


@dataclass(frozen=True)
class SuiteSpec:
    """Where things are on the node, and what runs.

    Attributes:
        namespace: where the workloads and ServiceAccounts go.
        image: the csi-sidecars image (also runs the playground driver).
        driver_name: the CSI driver name.
        kubelet_root: kubelet's ``--root-dir`` on the node (paths in CSI calls are under it).
        state_dir: host directory for the driver's volumes.
        faults_dir: host directory with the driver's ``faults.json``.
        api_port: the API server's port on 127.0.0.1.
        roles: controller roles to run in the Deployment.
        attach: whether the driver needs ControllerPublish (and the attacher runs).
        liveness_port: livenessprobe's port on the host network.
        registrar_port: node-driver-registrar's HTTP port on the host network.
        node: the node the controller Deployment runs on (the driver's volumes are there).
    """

    namespace: str
    image: str
    driver_name: str
    kubelet_root: str
    state_dir: str
    faults_dir: str
    api_port: int
    roles: tuple[str, ...] = ("provisioner", "attacher")
    attach: bool = True
    liveness_port: int = 9808
    registrar_port: int = 9809
    node: str = "node-1"
    verbosity: int = 3
    driver_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def plugin_dir(self) -> str:
        """The driver's socket directory on the node."""
        return f"{self.kubelet_root}/plugins/{self.driver_name}"


def _api_env(spec: SuiteSpec) -> list[dict[str, Any]]:
    return [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(spec.api_port)},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]


def _host_dir(name: str, path: str, kind: str = "DirectoryOrCreate") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def _sidecar(
    spec: SuiteSpec, name: str, args: list[str], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [name if name != "liveness-probe" else "livenessprobe", *args],
        "env": _api_env(spec),
        "securityContext": {"runAsUser": 0, "runAsGroup": 0, "readOnlyRootFilesystem": True},
        "volumeMounts": mounts,
    }


def service_account(spec: SuiteSpec, name: str) -> dict[str, Any]:
    """A ServiceAccount of the suite."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": spec.namespace},
    }


def sa_user(spec: SuiteSpec, name: str) -> str:
    """The user name a ServiceAccount authenticates as."""
    return f"system:serviceaccount:{spec.namespace}:{name}"


def rbac_objects(spec: SuiteSpec) -> list[dict[str, Any]]:
    """ClusterRoles, ClusterRoleBindings and RoleBindings for the controller ServiceAccount."""
    user = sa_user(spec, "csi-controller")
    out: list[dict[str, Any]] = []
    for role in spec.roles:
        identity = CONTROLLER_IDENTITIES[role]
        out += rbac.cluster_objects(identity, user)
        out += rbac.namespace_bindings(identity, spec.namespace, user)
    return out


def node_daemonset(spec: SuiteSpec) -> dict[str, Any]:
    """The node plugin: driver, node-driver-registrar and livenessprobe."""
    socket = {"name": "socket-dir", "mountPath": SOCKET_DIR}
    kubelet = spec.kubelet_root
    driver = {
        "name": "csi-driver",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", "csi_sidecars.playground.driver"],
        "args": [
            f"--endpoint=unix://{SOCKET_DIR}/csi.sock",
            "--nodeid=$(NODE_NAME)",
            f"--drivername={spec.driver_name}",
            f"--statedir={STATE_DIR}",
            f"--faults-file={FAULTS_DIR}/faults.json",
            "--mount-volumes",
            "--enable-topology",
            *(["--enable-attach"] if spec.attach else []),
            f"-v={spec.verbosity}",
            *spec.driver_args,
        ],
        "env": _api_env(spec),
        "securityContext": {"privileged": True, "runAsUser": 0},
        # Until the driver and livenessprobe have both started once, the startup probe holds
        # the liveness probe back (Python takes seconds to start on a busy machine).
        # Every failed probe is a Warning event of the pod; every 3 seconds keeps a slow start
        # from spending the pod's event budget.
        "startupProbe": {
            "httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": spec.liveness_port},
            "periodSeconds": 3,
            "failureThreshold": 40,
        },
        "livenessProbe": {
            "httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": spec.liveness_port},
            "periodSeconds": 2,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
        "volumeMounts": [
            socket,
            {
                "name": "pods-dir",
                "mountPath": f"{kubelet}/pods",
                "mountPropagation": "Bidirectional",
            },
            {
                "name": "plugins-dir",
                "mountPath": f"{kubelet}/plugins",
                "mountPropagation": "Bidirectional",
            },
            {"name": "state-dir", "mountPath": STATE_DIR},
            {"name": "faults-dir", "mountPath": FAULTS_DIR},
            {"name": "dev-dir", "mountPath": "/dev"},
        ],
    }
    registrar = _sidecar(
        spec,
        "node-driver-registrar",
        [
            f"--csi-address={SOCKET_DIR}/csi.sock",
            f"--kubelet-registration-path={spec.plugin_dir}/csi.sock",
            "--plugin-registration-path=/registration",
            f"--http-endpoint=127.0.0.1:{spec.registrar_port}",
            f"-v={spec.verbosity}",
        ],
        [socket, {"name": "registration-dir", "mountPath": "/registration"}],
    )
    registrar["readinessProbe"] = {
        "httpGet": {
            "host": "127.0.0.1",
            "path": "/healthz/registration",
            "port": spec.registrar_port,
        },
        "periodSeconds": 3,
    }
    liveness = _sidecar(
        spec,
        "liveness-probe",
        [
            f"--csi-address={SOCKET_DIR}/csi.sock",
            f"--http-endpoint=127.0.0.1:{spec.liveness_port}",
            "--probe-timeout=2s",
            f"-v={spec.verbosity}",
        ],
        [socket],
    )
    labels = {LABEL: "csi-node"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "csi-node", "namespace": spec.namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "csi-node",
                    "hostNetwork": True,
                    # The testbed runs no cluster DNS: with ClusterFirstWithHostNet kubelet warns
                    # MissingClusterDNS at every pod sync, and those Warnings use up the pod's
                    # event budget (25, then one per 5 minutes) before a probe failure is told.
                    "dnsPolicy": DNS_POLICY,
                    "terminationGracePeriodSeconds": 5,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [driver, registrar, liveness],
                    "volumes": [
                        _host_dir("socket-dir", spec.plugin_dir),
                        _host_dir("registration-dir", f"{kubelet}/plugins_registry", "Directory"),
                        _host_dir("pods-dir", f"{kubelet}/pods", "Directory"),
                        _host_dir("plugins-dir", f"{kubelet}/plugins", "Directory"),
                        _host_dir("state-dir", spec.state_dir),
                        _host_dir("faults-dir", spec.faults_dir),
                        _host_dir("dev-dir", "/dev", "Directory"),
                    ],
                },
            },
        },
    }


def controller_deployment(spec: SuiteSpec) -> dict[str, Any]:
    """The controller sidecars, on the driver's node, dialing its socket."""
    socket = {"name": "socket-dir", "mountPath": SOCKET_DIR}
    containers = [
        _sidecar(
            spec,
            role,
            [
                f"--csi-address={SOCKET_DIR}/csi.sock",
                "--leader-election=true",
                f"--leader-election-namespace={spec.namespace}",
                f"-v={spec.verbosity}",
            ],
            [socket],
        )
        for role in spec.roles
    ]
    labels = {LABEL: "csi-controller"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "csi-controller", "namespace": spec.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "csi-controller",
                    "hostNetwork": True,
                    # The testbed runs no cluster DNS: with ClusterFirstWithHostNet kubelet warns
                    # MissingClusterDNS at every pod sync, and those Warnings use up the pod's
                    # event budget (25, then one per 5 minutes) before a probe failure is told.
                    "dnsPolicy": DNS_POLICY,
                    "nodeName": spec.node,
                    "terminationGracePeriodSeconds": 5,
                    "containers": containers,
                    "volumes": [_host_dir("socket-dir", spec.plugin_dir)],
                },
            },
        },
    }


def suite_objects(spec: SuiteSpec) -> list[dict[str, Any]]:
    """Everything to apply, in order (ServiceAccounts and RBAC before the workloads)."""
    return [
        service_account(spec, "csi-controller"),
        service_account(spec, "csi-node"),
        *rbac_objects(spec),
        node_daemonset(spec),
        controller_deployment(spec),
    ]
